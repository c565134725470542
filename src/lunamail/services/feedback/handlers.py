"""Queue handlers of the feedback service.

``ingest_raw`` classifies one stored raw message and emits its feedback events.
It is safe to run twice: a redelivery of the same command (same ``ingest_id``)
re-emits the events it recorded -- they carry stable ids, so consumers count them
once -- and any other command for bytes already classified emits nothing.
"""

from __future__ import annotations

import logging

from lunamail.domain.campaigns import CampaignSendStarted
from lunamail.domain.feedback import IngestRaw
from lunamail.domain.messages import Message
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import IF_ABSENT, ConditionFailed, attr_equals

from . import dsn
from .ingest import (
    campaign_for_ref,
    events_for,
    events_from_records,
    feedback_pk,
    ingest_sk,
    record_done,
    remember_campaign_ref,
    verp_key_for,
)

log = logging.getLogger("lunamail.feedback.handlers")


def _sha_of(msg: IngestRaw) -> str:
    if msg.sha256:
        return msg.sha256
    name = msg.blob_key.rsplit("/", 1)[-1]
    return name.split(".", 1)[0]


def _replay_or_nothing(msg: IngestRaw, record: dict[str, object]) -> list[Message]:
    if msg.ingest_id and record.get("done_by") == msg.ingest_id:
        events = record.get("events")
        return events_from_records(events if isinstance(events, list) else [])
    log.info("feedback %s for %s already ingested; nothing to do", msg.sha256[:12], msg.account)
    return []


def ingest_raw(msg: IngestRaw, deps: Deps) -> list[Message]:
    """Read the stored bytes, classify them, map them to the recipient and campaign,
    record the outcome and return the events (see ``ingest`` for the mapping).

    Errors (a missing blob, a store failure, a parser bug) propagate: the queue
    retries, then dead-letters the command, and the raw bytes stay in Blobs.
    """
    sha = _sha_of(msg)
    if sha != msg.sha256:
        msg = IngestRaw(
            account=msg.account, blob_key=msg.blob_key, envelope_to=msg.envelope_to,
            sha256=sha, received_at=msg.received_at, ingest_id=msg.ingest_id,
        )  # fmt: skip
    pk, sk = feedback_pk(msg.account), ingest_sk(sha)
    record = deps.store.get(pk, sk)
    if record is not None and record.get("status") == "done":
        return _replay_or_nothing(msg, record)
    raw = deps.blobs.get(msg.blob_key)
    cls = dsn.classify(raw, envelope_to=msg.envelope_to)
    at = msg.received_at or (float(record["received_at"]) if record else deps.clock.now())
    res = events_for(
        cls,
        account=msg.account,
        envelope_to=msg.envelope_to,
        key_for_account=verp_key_for(deps, msg.account),
        at=at,
        ref=sha[:32],
        campaign_lookup=campaign_for_ref(deps, msg.account),
    )
    if cls.kind == "other":
        log.info(
            "feedback %s for %s is not a bounce, complaint, delay or auto-reply (%s); kept, no event",
            sha[:12], msg.account, (cls.subject or "")[:80],
        )  # fmt: skip
    done = record_done(record, msg=msg, cls=cls, res=res, now=deps.clock.now())
    cond = attr_equals(status="stored") if record is not None else IF_ABSENT
    try:
        deps.store.put(done, condition=cond)
    except ConditionFailed:
        # Another run classified the same bytes meanwhile: it owns the events.
        again = deps.store.get(pk, sk)
        return _replay_or_nothing(msg, again) if again is not None else []
    return list(res.events)


def on_campaign_send_started(msg: CampaignSendStarted, deps: Deps) -> list[Message]:
    """Remember the campaign's return-path reference, so its bounces map back to it."""
    remember_campaign_ref(deps, msg.account, msg.campaign)
    return []
