"""Feedback use cases: classify a raw message, ingest raw feedback mail, take SES notifications.

Ingesting stores the raw bytes first (nothing valid is lost), classifies them and emits
the feedback events (bounces, complaints, ...); the same bytes ingested twice change
nothing and emit nothing new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from lunamail.domain.messages import Message
from lunamail.services.feedback import handlers as feedback_handlers
from lunamail.services.feedback import ingest as ingest_api
from lunamail.services.feedback.dsn import classify
from lunamail.services.feedback.sns import parse_ses_notification

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
