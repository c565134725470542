"""The upload function: an S3 event notification on ``uploads/`` starts the import.

S3 notifies an SQS queue (a direct S3 -> Lambda trigger would make the bucket and the
function depend on each other); each record's body is an S3 event with one or more
``ObjectCreated`` records.  A CSV at ``uploads/{account}/{id}.csv`` whose import was
declared (``POST /v1/imports``) is started through the application layer, exactly as
the API's explicit start does, which stays for local use; starting twice is a no-op.
An upload nobody declared is logged and left alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

import orjson

from lunamail.app import audience as app_audience
from lunamail.app.base import Actor, Env
from lunamail.app.errors import code_of
from lunamail.entrypoints.aws.sqs import SqsApp
from lunamail.runtime.bootstrap import System

log = logging.getLogger("lunamail.entrypoints.aws")

QUEUE = "audience.uploads"
"""The upload function's logical queue (not routed: its bodies are S3 events)."""
PREFIX = "uploads/"
_KEY = re.compile(r"^uploads/([A-Za-z0-9_-]{1,64})/([A-Za-z0-9]{1,64})\.csv$")


def uploads_in(body: bytes) -> list[tuple[str, str]]:
    """``(account, upload id)`` of each created import file an S3 event names (keys are
    URL-encoded in S3 events); S3's test event and other keys give nothing."""
    doc = orjson.loads(body)
    out: list[tuple[str, str]] = []
    for rec in doc.get("Records") or [] if isinstance(doc, dict) else []:
        if not str(rec.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        key = unquote_plus(str(((rec.get("s3") or {}).get("object") or {}).get("key", "")))
        m = _KEY.match(key)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


class UploadApp(SqsApp):
    batch_forms = False

    def _record(self, system: System, record: Mapping[str, Any]) -> None:
        env = Env(system.deps, system.bus.publish)
        for account, upload_id in uploads_in(str(record.get("body") or "").encode("utf-8")):
            try:
                app_audience.start_import(env, Actor(account), upload_id)
            except Exception as exc:
                if code_of(exc) != "not_found":
                    raise
                log.warning("upload %s of %s was not declared as an import; left alone",
                            upload_id, account)


_app = UploadApp()


def upload_handler(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Lambda entry of the upload function (``lunamail.entrypoints.aws.uploads.upload_handler``)."""
    return _app.handle(event, context)


def reset() -> None:
    _app.reset()
