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

import logging
from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from lunamail.adapters.certs import HttpsFetcher
from lunamail.app import feedback
from lunamail.app.base import Env
from lunamail.app.feedback import SnsVerifier
from lunamail.config import Settings
from lunamail.domain.accounts import valid_account_id
from lunamail.entrypoints.http.context import Publish
from lunamail.entrypoints.http.errors import ErrorRoute, error_response
from lunamail.ports.deps import Deps

__all__ = ["MAX_BODY_BYTES", "default_verifier", "router_factory"]

log = logging.getLogger("lunamail.http.feedback")

MAX_BODY_BYTES = 512 * 1024  # SNS messages are at most 256 KB; the envelope adds little


def default_verifier(
    settings: Settings,
    *,
    fetch_cert: Callable[[str], bytes] | None = None,
    now: Callable[[], float] | None = None,
) -> SnsVerifier:
    """The production verifier: certificates fetched over verified HTTPS from SNS hosts,
    topics limited to ``sns_topic_arns``, optional ``sns_max_age_seconds``."""
    return feedback.sns_verifier(settings, fetch_cert=fetch_cert or HttpsFetcher(), now=now)


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
    router = APIRouter(tags=["feedback"], route_class=ErrorRoute, include_in_schema=False)

    def handle(account: str, body: bytes) -> Response:
        answer = feedback.take_sns_message(Env(deps, publish), account, body, verifier=sns, confirm_fetch=fetch)
        if answer.status >= 400:
            return error_response(answer.status, answer.code, answer.message)
        return JSONResponse(answer.doc)

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
