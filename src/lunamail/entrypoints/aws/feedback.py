"""The SES feedback function: SES configuration set -> SNS topic -> SQS -> here.

Each SQS record's body is the SNS envelope of one SES event notification (bounce,
complaint, delivery, reject, delivery delay).  The feedback service stores it and maps
it to events, which are published through the bus like any handler's; a record that
fails is reported in ``batchItemFailures`` and retried by SQS, then dead-lettered by the
queue's redrive policy.  The HTTP route ``/feedback/ses/{account}`` stays for SNS
subscriptions over HTTPS, where the SNS signature is checked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lunamail.app import feedback
from lunamail.app.base import Env
from lunamail.entrypoints.aws.sqs import SqsApp
from lunamail.runtime.bootstrap import System

log = logging.getLogger("lunamail.entrypoints.aws")

QUEUE = "feedback.ses_events"
"""The feedback function's logical queue: not in the routing table, since its bodies are
SNS envelopes of SES notifications, not Lunamail messages."""


class SesFeedbackApp(SqsApp):
    """The same per-container system and partial batch responses as the queue functions."""

    batch_forms = False

    def _record(self, system: System, record: Mapping[str, Any]) -> None:
        message_id = str(record.get("messageId", ""))
        body = str(record.get("body") or "").encode("utf-8")
        try:
            feedback.take_ses_queue_record(Env(system.deps, system.bus.publish), body, message_id)
        except Exception:
            log.exception("SES notification %s failed; SQS retries it", message_id)
            raise


_app = SesFeedbackApp()


def ses_feedback_handler(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Lambda entry of the feedback function (``lunamail.entrypoints.aws.feedback.ses_feedback_handler``)."""
    return _app.handle(event, context)


def reset() -> None:
    _app.reset()
