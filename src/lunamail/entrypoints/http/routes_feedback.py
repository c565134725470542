"""Public SES feedback endpoint: ``POST /feedback/ses/{account}`` for an SNS HTTPS subscription.

No API key: the SNS signature is the authentication, checked before anything
else reads the payload (principle 9); an unsigned or badly signed request is a
403 and a log line, never an event.  A signature proves SNS sent the message,
not that it is ours, so the verifier also checks the topic against
the ``sns_topic_arns`` setting (ARNs or ``fnmatch`` patterns; unset means
no topic is accepted).

* ``SubscriptionConfirmation``: the ``SubscribeURL`` is fetched (confirming the
  subscription) only when it is https on an SNS host.
* ``Notification``: the body is stored in Blobs as received, *then* mapped to
  feedback (and SES open/click tracking) events and published.  If publishing
  fails the answer is a 500 so SNS retries; the stored copy means nothing valid
  is lost either way.  Event ids derive from the SNS ``MessageId``, so a retried
  notification is counted once downstream.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from lunamail.adapters.certs import HttpsFetcher
from lunamail.app import feedback
from lunamail.app.base import Actor, Env
from lunamail.config import Settings
from lunamail.domain.accounts import valid_account_id
from lunamail.entrypoints.http.context import Publish
from lunamail.entrypoints.http.errors import ErrorRoute, error_response
from lunamail.ports.deps import Deps
from lunamail.services.feedback.sns import (
    SnsVerificationError,
    SnsVerifier,
)

__all__ = ["MAX_BODY_BYTES", "default_verifier", "router_factory"]

log = logging.getLogger("lunamail.http.feedback")

MAX_BODY_BYTES = 512 * 1024  # SNS messages are at most 256 KB; the envelope adds little


def _topic_rule(settings: Settings) -> Callable[[str], bool]:
    patterns = list(settings.sns_topic_arns)

    def accept(topic: str) -> bool:
        if not patterns:
            log.warning("SNS topic %s refused: set LUNAMAIL_SNS_TOPIC_ARNS to accept it", topic)
        return any(fnmatch.fnmatchcase(topic, str(p)) for p in patterns)

    return accept


def default_verifier(
    settings: Settings,
    *,
    fetch_cert: Callable[[str], bytes] | None = None,
    now: Callable[[], float] | None = None,
) -> SnsVerifier:
    """The production verifier: certificates fetched over verified HTTPS from SNS hosts,
    topics limited to ``sns_topic_arns``, optional ``sns_max_age_seconds``."""
    max_age = settings.sns_max_age_seconds or None
    return SnsVerifier(
        fetch_cert or HttpsFetcher(),
        now=now,
        trusted_hosts_pattern=settings.sns_hosts_pattern,
        accept_topic=_topic_rule(settings),
        max_age_seconds=float(max_age) if max_age is not None else None,
    )


def _subscribe_url_ok(url: object, hosts: re.Pattern[str]) -> bool:
    if not isinstance(url, str) or len(url) > 4096:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and parts.username is None
        and parts.password is None
        and port in (None, 443)
        and bool(hosts.fullmatch(parts.hostname or ""))
    )


def _ok(doc: dict[str, Any]) -> JSONResponse:
    return JSONResponse(doc)


def router_factory(
    publish: Publish,
    deps: Deps,
    verifier: SnsVerifier | None = None,
    *,
    confirm_fetch: Callable[[str], bytes] | None = None,
) -> APIRouter:
    """The public SES/SNS router.  ``verifier`` and ``confirm_fetch`` are the trust anchor
    and the network; tests inject both, production takes the defaults."""
    sns = verifier or default_verifier(deps.settings)
    fetch = confirm_fetch or HttpsFetcher()
    hosts = re.compile(deps.settings.sns_hosts_pattern)
    router = APIRouter(tags=["feedback"], route_class=ErrorRoute, include_in_schema=False)

    def confirm(account: str, payload: dict[str, Any]) -> Response:
        url = payload.get("SubscribeURL")
        if not _subscribe_url_ok(url, hosts):
            log.warning(
                "SNS subscription for %s refused: SubscribeURL is not an SNS https URL", account
            )
            return error_response(400, "bad_request", "SubscribeURL is not an SNS https URL")
        try:
            fetch(str(url))
        except Exception as exc:
            log.warning("SNS subscription for %s: confirming failed: %s", account, exc)
            return error_response(502, "bad_gateway", "the subscription could not be confirmed")
        log.info("SNS subscription to %s confirmed for %s", payload.get("TopicArn"), account)
        return _ok({"status": "confirmed"})

    def notify(account: str, payload: dict[str, Any], body: bytes) -> Response:
        message_id = str(payload.get("MessageId") or "")
        env = Env(deps, publish)
        try:
            out = feedback.take_ses_notification(
                env, Actor(account), body, message=str(payload.get("Message", "")), message_id=message_id
            )
        except Exception:
            log.exception("SES feedback %s for %s failed; SNS will retry", message_id, account)
            return error_response(500, "internal_error", "could not publish; retry")
        return _ok({"status": "accepted" if out.recognised else "stored", "events": out.events})

    def handle(account: str, body: bytes) -> Response:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return error_response(400, "bad_request", "the body is not JSON")
        if not isinstance(payload, dict):
            return error_response(400, "bad_request", "the body is not a JSON object")
        try:
            sns.verify(payload)
        except SnsVerificationError as exc:
            log.warning("SNS message for %s refused: %s", account, exc.reason)
            return error_response(403, "forbidden", "the SNS signature is missing or invalid")
        kind = payload.get("Type")
        if kind == "SubscriptionConfirmation":
            return confirm(account, payload)
        if kind == "Notification":
            return notify(account, payload, body)
        log.info("SNS %s for %s acknowledged, nothing to do", kind, account)
        return _ok({"status": "ignored"})

    @router.post("/feedback/ses/{account}")
    async def ses_feedback(account: str, request: Request) -> Response:
        """SNS posts JSON as text/plain; the content type is not checked."""
        if not valid_account_id(account):
            return error_response(404, "not_found", f"no route POST {request.url.path}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return error_response(
                    413, "payload_too_large", f"bodies are limited to {MAX_BODY_BYTES} bytes"
                )
        return await run_in_threadpool(handle, account, bytes(body))

    return router
