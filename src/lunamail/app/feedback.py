"""Feedback use cases: classify a raw message, ingest raw feedback mail, take SES notifications.

Ingesting stores the raw bytes first (nothing valid is lost), classifies them and emits
the feedback events (bounces, complaints, ...); the same bytes ingested twice change
nothing and emit nothing new.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from lunamail.config import Settings
from lunamail.domain.messages import Message
from lunamail.services.feedback import handlers as feedback_handlers
from lunamail.services.feedback import ingest as ingest_api
from lunamail.services.feedback.dsn import classify
from lunamail.services.feedback.sns import SnsVerificationError, parse_ses_notification
from lunamail.services.feedback.sns import SnsVerifier as SnsVerifier

from .base import Actor, Emitted, Env, Permission, command
from .errors import InvalidInput

log = logging.getLogger("lunamail.app.feedback")

#: Refuse messages far beyond any real feedback message rather than parse them.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Ingested:
    blob_key: str
    sha256: str
    duplicate: bool  # these bytes were ingested before
    kind: str | None
    bounce_type: str | None
    recipients: list[str]
    campaign: str
    verp: str | None
    events: list[dict[str, Any]] = field(default_factory=list)  # name + the telling fields


@dataclass(frozen=True)
class SesAccepted:
    stored_at: str  # the blob key of the notification as received
    events: int  # how many events it became
    recognised: bool = True  # False: not a SES notification (kept anyway, nothing emitted)


def _size_ok(raw: bytes) -> None:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidInput(f"{len(raw)} bytes is too large for a feedback message", {"raw": "too large"})


def _event_view(msg: Message) -> dict[str, Any]:
    body = msg.to_dict()["body"]
    keep = ("email", "campaign", "bounce_type", "status", "feedback_type")
    return {"name": msg.NAME, **{k: body[k] for k in keep if body.get(k) is not None}}


def parse(raw: bytes, *, envelope_to: str | None = None) -> dict[str, Any]:
    """Classify one raw message (bounce hard/soft, complaint, auto-reply, delay, other)
    without storing or emitting anything: a pure function, needing no data folder."""
    _size_ok(raw)
    return classify(raw, envelope_to=envelope_to or None).to_dict()


@command(Permission.AUDIENCE)
def ingest(env: Env, actor: Actor, raw: bytes, *, envelope_to: str | None = None) -> Emitted[Ingested]:
    """Store, classify and emit one raw feedback message for the actor's account."""
    _size_ok(raw)
    cmd = ingest_api.store_raw(env.deps, actor.account, raw, envelope_to or None)
    before = ingest_api.ingest_record(env.deps, actor.account, cmd.sha256)
    duplicate = before is not None and before.get("status") == "done"
    events = feedback_handlers.ingest_raw(cmd, env.deps)
    rec = ingest_api.ingest_record(env.deps, actor.account, cmd.sha256) or {}
    out = Ingested(
        blob_key=cmd.blob_key, sha256=cmd.sha256, duplicate=duplicate, kind=rec.get("kind"),
        bounce_type=rec.get("bounce_type"), recipients=list(rec.get("recipients", [])),
        campaign=str(rec.get("campaign", "")), verp=rec.get("verp"),
        events=[_event_view(e) for e in events],
    )  # fmt: skip
    return Emitted(out, events)


@command(Permission.AUDIENCE)
def take_ses_notification(env: Env, actor: Actor, body: bytes, *, message: str, message_id: str) -> Emitted[SesAccepted]:
    """A verified SNS notification from the account's SES configuration set: stored as
    received, then mapped to feedback and tracking events (ids from the SNS MessageId, so
    a retried notification is counted once).  ``message`` is the SNS ``Message`` field.
    A body that is not a SES notification is kept and emits nothing."""
    account = actor.account
    key = ingest_api.store_ses(env.deps, account, body, message_id)
    try:
        items = parse_ses_notification(
            message, key_for_account=ingest_api.verp_key_for(env.deps, account), default_account=account,
            campaign_for_ref=ingest_api.campaign_for_ref(env.deps, account),
        )  # fmt: skip
    except (ValueError, TypeError) as exc:
        log.warning("SNS %s for %s is not a SES notification (%s); kept at %s", message_id, account, exc, key)
        return Emitted(SesAccepted(key, 0, recognised=False))
    events = ingest_api.events_from_ses(items, account=account, ref=message_id or key)
    return Emitted(SesAccepted(key, len(events)), events)


# ---------------------------------------------------------------- SES feedback over SNS HTTPS


@dataclass(frozen=True)
class SnsAnswer:
    """What the public SNS endpoint answers: ``status`` and either ``doc`` (2xx) or the
    error ``code`` and ``message``."""

    status: int
    doc: dict[str, Any] = field(default_factory=dict)
    code: str = ""
    message: str = ""


def _topic_rule(settings: Settings) -> Callable[[str], bool]:
    patterns = list(settings.sns_topic_arns)

    def accept(topic: str) -> bool:
        if not patterns:
            log.warning("SNS topic %s refused: set LUNAMAIL_SNS_TOPIC_ARNS to accept it", topic)
        return any(fnmatch.fnmatchcase(topic, str(p)) for p in patterns)

    return accept


def sns_verifier(settings: Settings, *, fetch_cert: Callable[[str], bytes],
                 now: Callable[[], float] | None = None) -> SnsVerifier:
    """The verifier the settings ask for: certificates from SNS hosts only (the pattern
    ``sns_hosts_pattern``), topics limited to ``sns_topic_arns`` (none: every topic is
    refused), messages no older than ``sns_max_age_seconds`` when set."""
    max_age = settings.sns_max_age_seconds or None
    return SnsVerifier(
        fetch_cert,
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


def take_sns_message(env: Env, account: str, body: bytes, *, verifier: SnsVerifier,
                     confirm_fetch: Callable[[str], bytes]) -> SnsAnswer:
    """One POST from SNS to the account's feedback endpoint.  No API key: the signature is
    the authority, checked before anything else reads the payload.  A subscription
    confirmation is fetched only from an SNS https URL; a notification is stored, then
    mapped (``take_ses_notification``); a failure to publish answers 500 so SNS retries."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return SnsAnswer(400, code="bad_request", message="the body is not JSON")
    if not isinstance(payload, dict):
        return SnsAnswer(400, code="bad_request", message="the body is not a JSON object")
    try:
        verifier.verify(payload)
    except SnsVerificationError as exc:
        log.warning("SNS message for %s refused: %s", account, exc.reason)
        return SnsAnswer(403, code="forbidden", message="the SNS signature is missing or invalid")
    kind = payload.get("Type")
    if kind == "SubscriptionConfirmation":
        url = payload.get("SubscribeURL")
        if not _subscribe_url_ok(url, re.compile(env.deps.settings.sns_hosts_pattern)):
            log.warning("SNS subscription for %s refused: SubscribeURL is not an SNS https URL", account)
            return SnsAnswer(400, code="bad_request", message="SubscribeURL is not an SNS https URL")
        try:
            confirm_fetch(str(url))
        except Exception as exc:
            log.warning("SNS subscription for %s: confirming failed: %s", account, exc)
            return SnsAnswer(502, code="bad_gateway", message="the subscription could not be confirmed")
        log.info("SNS subscription to %s confirmed for %s", payload.get("TopicArn"), account)
        return SnsAnswer(200, {"status": "confirmed"})
    if kind == "Notification":
        message_id = str(payload.get("MessageId") or "")
        try:
            out = take_ses_notification(
                env, Actor(account), body, message=str(payload.get("Message", "")), message_id=message_id
            )
        except Exception:
            log.exception("SES feedback %s for %s failed; SNS will retry", message_id, account)
            return SnsAnswer(500, code="internal_error", message="could not publish; retry")
        return SnsAnswer(200, {"status": "accepted" if out.recognised else "stored", "events": out.events})
    log.info("SNS %s for %s acknowledged, nothing to do", kind, account)
    return SnsAnswer(200, {"status": "ignored"})


def take_ses_queue_record(env: Env, body: bytes, ref: str) -> int:
    """One SES event notification from the stack's own SNS topic through its own queue (no
    signature to check: only SES of this AWS account may publish there); its events are
    published and counted.  A redelivery publishes the same event ids, counted once."""
    events = ingest_api.events_from_ses_queue(env.deps, body, ref)
    if events:
        env.publish(list(events))
    return len(events)
