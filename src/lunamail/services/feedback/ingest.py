"""Feedback ingest: raw inbound mail and SES notifications become feedback events.

Raw bytes are written to Blobs *before* anything parses them (principle 8), under
a content-addressed key, so a crash in the parser (or a bug found next month)
never loses a bounce: the handler is retried, dead-lettered and replayed from the
stored copy.  A small ingest record per message (``A#{account}#FB`` /
``IN#{sha256}``) remembers the outcome, which makes a second ingest of the same
bytes a no-op and lets the CLI report what happened.

Who a bounce is about, in order of trust:

1. a VERP token of *this* account (signed, so it cannot be forged), found in the
   classification's ``verp``, the envelope recipient, or the ``X-Lunamail-Token``
   / ``Return-Path`` header of the returned original.  A token that carries a
   recipient id instead of the address is matched against the report's recipients;
2. the report's own recipients, with the campaign from the original's
   ``X-Lunamail-Campaign`` header, else ``""`` (the event is still emitted: the
   reports service keeps unmapped feedback).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from lunamail.domain.accounts import valid_account_id
from lunamail.domain.feedback import (
    AutoReplied,
    Bounced,
    BounceType,
    Complained,
    Delivered,
    DeliveryDelayed,
    IngestRaw,
)
from lunamail.domain.messages import Event, Message, from_dict
from lunamail.domain.tracking import Clicked, Opened
from lunamail.lib import emails, tokens
from lunamail.lib.verp import VerpToken, campaign_ref, decode_return_path
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import IF_ABSENT, ConditionFailed, Item

from .dsn import Classification
from .sns import parse_ses_notification

__all__ = [
    "MAX_RAW_BYTES",
    "Resolution",
    "campaign_for_ref",
    "events_for",
    "events_from_records",
    "events_from_ses",
    "events_from_ses_queue",
    "feedback_pk",
    "ingest_record",
    "ingest_sk",
    "raw_blob_key",
    "record_done",
    "remember_campaign_ref",
    "ses_blob_key",
    "store_raw",
    "store_ses",
    "verp_key_for",
]

log = logging.getLogger("lunamail.feedback.ingest")

MAX_RAW_BYTES = 64 * 1024 * 1024  # beyond any real feedback mail; refused rather than stored
_TOKEN_HEADERS = ("x-lunamail-token", "return-path")


# ---------------------------------------------------------------- keys


def feedback_pk(account: str) -> str:
    """Partition of the feedback service's per-account items."""
    return f"A#{account}#FB"


def ingest_sk(sha256: str) -> str:
    return f"IN#{sha256}"


def _day_path(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y/%m/%d")


def raw_blob_key(account: str, sha256: str, at: float) -> str:
    """``inbound/{account}/{yyyy}/{mm}/{dd}/{sha256}.eml``: dated for lifecycle rules,
    named by content so the same bytes on the same day land on one object."""
    return f"inbound/{account}/{_day_path(at)}/{sha256}.eml"


def ses_blob_key(account: str, message_id: str, at: float) -> str:
    """``inbound-ses/{account}/{yyyy}/{mm}/{dd}/{id}.json``; ``id`` is SNS's MessageId
    (a redelivery overwrites the same object with the same bytes)."""
    safe = "".join(c for c in message_id if c.isalnum() or c in "-_.")[:128].strip(".")
    return f"inbound-ses/{account}/{_day_path(at)}/{safe or 'unnamed'}.json"


def _check_account(account: str) -> None:
    if not valid_account_id(account):
        raise ValueError(f"invalid account id {account!r}")


# ---------------------------------------------------------------- storing raw input


def store_raw(deps: Deps, account: str, raw: bytes, envelope_to: str | None = None) -> IngestRaw:
    """Make ``raw`` durable and return the command that classifies it.

    The blob is written first; only then is the ingest record claimed.  Ingesting
    bytes already seen reuses the first blob (no second copy) and yields a command
    whose handler run is a no-op once the first one finished.
    """
    _check_account(account)
    if len(raw) > MAX_RAW_BYTES:
        raise ValueError(f"raw message of {len(raw)} bytes exceeds {MAX_RAW_BYTES}")
    sha = hashlib.sha256(raw).hexdigest()
    pk, sk = feedback_pk(account), ingest_sk(sha)
    ingest_id = secrets.token_hex(8)
    record = deps.store.get(pk, sk)
    if record is None:
        now = deps.clock.now()
        key = raw_blob_key(account, sha, now)
        deps.blobs.put(key, raw, content_type="message/rfc822")
        record = {
            "pk": pk, "sk": sk, "sha256": sha, "blob_key": key, "envelope_to": envelope_to,
            "status": "stored", "received_at": now, "size": len(raw),
        }  # fmt: skip
        try:
            deps.store.put(record, condition=IF_ABSENT)
        except ConditionFailed:  # a concurrent ingest of the same bytes won; use its copy
            record = deps.store.get(pk, sk) or record
    return IngestRaw(
        account=account,
        blob_key=str(record["blob_key"]),
        envelope_to=envelope_to if envelope_to is not None else record.get("envelope_to"),
        sha256=sha,
        received_at=float(record["received_at"]),
        ingest_id=ingest_id,
    )


def ingest_record(deps: Deps, account: str, sha256: str) -> dict[str, Any] | None:
    """What the ingest of these bytes found: status (``stored`` until classified, then
    ``done``), kind, bounce_type, recipients, campaign, verp and the events emitted."""
    item = deps.store.get(feedback_pk(account), ingest_sk(sha256))
    if item is None:
        return None
    return {k: v for k, v in item.items() if k not in ("pk", "sk", "done_by")}


def store_ses(deps: Deps, account: str, body: bytes, message_id: str) -> str:
    """Keep a verified SNS notification exactly as received, before it is mapped."""
    _check_account(account)
    key = ses_blob_key(account, message_id or hashlib.sha256(body).hexdigest(), deps.clock.now())
    deps.blobs.put(key, body, content_type="application/json")
    return key


# ---------------------------------------------------------------- resolving raw feedback


def verp_key_for(deps: Deps, account: str) -> Callable[[str], bytes]:
    """The VERP key lookup, limited to ``account``: a token minted for another tenant
    is never trusted for this one's inbound mail."""

    def key(candidate: str) -> bytes:
        return deps.secrets.key(account, tokens.VERP) if candidate == account else b""

    return key


@dataclass
class Resolution:
    """Who and which campaign a classified message is about, and what to emit."""

    campaign: str = ""
    recipients: list[str] = field(default_factory=list)
    verp: str | None = None  # the return path whose signed token mapped it, if any
    events: list[Event] = field(default_factory=list)


def _normal(addr: str) -> str | None:
    found, _reason = emails.check(addr)
    return found


def campaign_ref_sk(ref: str) -> str:
    return f"CREF#{ref}"


def remember_campaign_ref(deps: Deps, account: str, campaign: str) -> None:
    """Record which campaign a return-path reference stands for (idempotent)."""
    ref = campaign_ref(deps.secrets.key(account, tokens.VERP), campaign)
    deps.store.put({"pk": feedback_pk(account), "sk": campaign_ref_sk(ref), "campaign": campaign})


def campaign_for_ref(deps: Deps, account: str) -> Callable[[str], str | None]:
    """The lookup of a return path's campaign reference, within ``account``."""

    def find(ref: str) -> str | None:
        item = deps.store.get(feedback_pk(account), campaign_ref_sk(ref))
        return str(item["campaign"]) if item and item.get("campaign") else None

    return find


def _find_token(
    cls: Classification,
    envelope_to: str | None,
    account: str,
    key_for_account: Callable[[str], bytes],
    campaign_lookup: Callable[[str], str | None] | None,
) -> tuple[VerpToken, str] | None:
    candidates = [cls.verp, envelope_to, *(cls.original_headers.get(h) for h in _TOKEN_HEADERS)]
    hints = (cls.original_headers.get("x-lunamail-campaign"),)
    for cand in candidates:
        if cand:
            token = decode_return_path(key_for_account, cand.strip(), account=account,
                                       campaign_for_ref=campaign_lookup, campaign_hints=hints)
            if token is not None:
                return token, cand.strip()
    return None


def _reported(cls: Classification) -> list[str]:
    seen: dict[str, None] = {}
    for addr in [*cls.recipients, *(d.email for d in cls.details)]:
        if addr:
            seen.setdefault(addr, None)
    return list(seen)


def events_for(
    cls: Classification,
    *,
    account: str,
    envelope_to: str | None,
    key_for_account: Callable[[str], bytes],
    at: float,
    ref: str,
    campaign_lookup: Callable[[str], str | None] | None = None,
) -> Resolution:
    """Map a classification to events (pure but for the key lookup).  ``ref`` makes the
    event ids: the same message always yields the same ids.  ``campaign_lookup`` maps a
    return path's campaign reference to the campaign id (see :func:`campaign_for_ref`)."""
    out = Resolution()
    found = _find_token(cls, envelope_to, account, key_for_account, campaign_lookup)
    reported = _reported(cls)
    if found is not None:
        token, out.verp = found
        out.campaign = token.campaign
        if token.email is not None:
            out.recipients = [token.email]
        else:
            matched = [r for r in reported if token.matches(r)]
            out.recipients = matched[:1] or reported
    else:
        out.campaign = cls.original_headers.get("x-lunamail-campaign", "").strip()
        out.recipients = reported
    if cls.kind == "other":
        return out
    details = {d.email.lower(): d for d in cls.details if d.email}
    for raw_addr in out.recipients:
        addr = _normal(raw_addr)
        if addr is None:
            log.warning("feedback %s: skipping unusable recipient %r", ref, raw_addr[:100])
            continue
        eid = f"dsn:{ref}:{cls.kind}:{addr.lower()}"
        base: dict[str, Any] = {"account": account, "campaign": out.campaign, "email": addr,
                                "source": "dsn", "at": at, "id": eid}  # fmt: skip
        detail = details.get(addr.lower())
        status = (detail.status if detail else None) or cls.status
        diagnostic = (detail.diagnostic if detail else None) or cls.diagnostic
        if cls.kind == "bounce":
            bounce_type: BounceType = (
                (detail.bounce_type if detail else None) or cls.bounce_type or "soft"
            )
            out.events.append(
                Bounced(**base, bounce_type=bounce_type, status=status, diagnostic=diagnostic)
            )
        elif cls.kind == "complaint":
            base["source"] = "arf"
            out.events.append(Complained(**base, feedback_type=cls.feedback_type or "abuse"))
        elif cls.kind == "delay":
            out.events.append(DeliveryDelayed(**base, status=status, diagnostic=diagnostic))
        elif cls.kind == "auto-reply":
            out.events.append(AutoReplied(**base, subject=(cls.subject or "")[:500]))
    return out


def events_from_records(records: Iterable[Mapping[str, Any]]) -> list[Message]:
    """Rebuild events kept in an ingest record (a redelivered command re-emits them)."""
    return [from_dict(dict(r)) for r in records]


# ---------------------------------------------------------------- SES notifications


def _ses_event(ev: Mapping[str, Any], account: str, ref: str) -> Event | None:
    kind = str(ev.get("type", ""))
    addr = _normal(str(ev.get("email") or ""))
    if addr is None:
        if kind not in ("open", "click"):  # opens/clicks of multi-recipient mail name nobody
            log.warning("SES %s %s: no usable recipient address", kind, ref)
        return None
    base: dict[str, Any] = {
        "account": account, "campaign": str(ev.get("campaign") or ""), "email": addr,
        "at": float(ev.get("at") or 0.0), "id": f"ses:{ref}:{kind}:{addr.lower()}",
    }  # fmt: skip
    status = ev.get("status") if isinstance(ev.get("status"), str) else None
    diagnostic = ev.get("diagnostic") if isinstance(ev.get("diagnostic"), str) else None
    if kind == "bounce":
        verdict = ev.get("bounce_type")
        btype: BounceType = verdict if verdict in ("hard", "sender") else "soft"
        return Bounced(**base, bounce_type=btype, status=status, diagnostic=diagnostic, source="ses")
    if kind == "complaint":
        return Complained(
            **base, feedback_type=str(ev.get("feedback_type") or "abuse"), source="ses"
        )
    if kind == "delivery":
        return Delivered(**base, source="ses")
    if kind == "delivery_delay":
        return DeliveryDelayed(**base, status=status, diagnostic=diagnostic, source="ses")
    if kind == "open":
        # SES cannot tell an image proxy from a person; published as human (as SES counts it).
        return Opened(**base, machine=False)
    if kind == "click":
        tags = ev.get("link_tags")
        link = -1  # SES does not know our template link numbers; a "lm_link" tag may
        if isinstance(tags, Mapping):
            raw_link = tags.get("lm_link")
            raw_link = raw_link[0] if isinstance(raw_link, list) and raw_link else raw_link
            if isinstance(raw_link, str) and raw_link.isdigit():
                link = int(raw_link)
        return Clicked(**base, link=link, url=str(ev.get("link") or ""), machine=False)
    log.info("SES %s %s: not a feedback event we keep", kind or "?", ref)  # e.g. reject
    return None


def events_from_ses(items: Iterable[Mapping[str, Any]], *, account: str, ref: str) -> list[Event]:
    """Events for the dicts of ``sns.parse_ses_notification``.  Items naming another
    account are dropped: the endpoint's account is the only one a notification may
    touch (a signed SNS message proves SNS sent it, not whose mail it was)."""
    out: list[Event] = []
    for ev in items:
        if ev.get("account") not in ("", account):
            log.warning(
                "SES %s names account %r on %r's endpoint; ignored", ref, ev.get("account"), account
            )
            continue
        mapped = _ses_event(ev, account, ref)
        if mapped is not None:
            out.append(mapped)
    return out


def events_from_ses_queue(deps: Deps, body: bytes, ref: str) -> list[Event]:
    """Events for one SES event notification that reached our own queue through our own SNS
    topic (the template lets only SES of this AWS account publish to the topic, and only the
    topic send to the queue, so there is no signature to check).  ``body`` is the SNS
    envelope (its ``MessageId`` keys the events, so a redelivery counts once) or, with raw
    delivery, the SES JSON itself (``ref`` then keys them).

    The account is the ``lm_account`` tag, else the signed VERP return path (any account's
    key may verify it: the token names its account).  The notification is stored under
    that account before it is mapped; one that names no account is logged and dropped, and
    a body that is not JSON raises (the record is retried, then dead-lettered)."""
    doc = orjson.loads(body)
    if isinstance(doc, dict) and doc.get("Type") == "Notification":
        ref = str(doc.get("MessageId") or ref)

    def any_account(candidate: str) -> bytes:
        return deps.secrets.key(candidate, tokens.VERP) if valid_account_id(candidate) else b""

    items = parse_ses_notification(doc, key_for_account=any_account)
    accounts = {str(i.get("account") or "") for i in items}
    if "" in accounts or not items:
        log.warning("SES notification %s names no account (or is empty); dropped", ref)
        accounts.discard("")
    out: list[Event] = []
    for account in sorted(a for a in accounts if valid_account_id(a)):
        store_ses(deps, account, body, ref)
        out.extend(events_from_ses([i for i in items if i.get("account") == account],
                                   account=account, ref=ref))
    return out


def record_done(
    record: Item | None,
    *,
    msg: IngestRaw,
    cls: Classification,
    res: Resolution,
    now: float,
) -> Item:
    """The ingest record after classification (the events are kept for redelivery)."""
    base: Item = dict(record) if record is not None else {
        "pk": feedback_pk(msg.account), "sk": ingest_sk(msg.sha256), "sha256": msg.sha256,
        "blob_key": msg.blob_key, "envelope_to": msg.envelope_to, "received_at": msg.received_at,
    }  # fmt: skip
    base.update(
        status="done",
        done_at=now,
        done_by=msg.ingest_id,
        kind=cls.kind,
        bounce_type=cls.bounce_type,
        feedback_type=cls.feedback_type,
        status_code=cls.status,
        recipients=list(res.recipients),
        campaign=res.campaign,
        verp=res.verp,
        events=[e.to_dict() for e in res.events],
    )
    return base
