"""Queue handlers of the campaigns service.  Each is safe to run twice.

``handle_send_campaign`` starts a scheduled (or commanded) send; a redelivered
command that already started the send re-emits the same ``CampaignSendStarted``
rather than nothing, so a crash between our write and the runtime's publish
never leaves a campaign "sending" that delivery never heard of (delivery
ignores a second start of the same campaign).
"""

from __future__ import annotations

import contextlib

from lunamail.domain.campaign_model import Action, Campaign, CampaignStatus, can
from lunamail.domain.campaigns import SendCampaign
from lunamail.domain.delivery import CampaignDelivered
from lunamail.domain.messages import Later, Message
from lunamail.ports.deps import Deps

from . import store
from .api import start, started_event
from .checks import pre_send_problems
from .errors import NotFound, PreSendCheckFailed

# A timer that fires this early is treated as on time (clock skew between machines).
EARLY_TOLERANCE = 2.0


class _Skip(Exception):
    """The message no longer applies to the campaign's state: do nothing."""


def _token(msg: SendCampaign) -> str:
    return "command" if msg.at is None else f"schedule:{msg.at!r}"


def handle_send_campaign(msg: SendCampaign, deps: Deps) -> list[Message | Later]:
    """Start the send when its time has come: [CampaignSendStarted].  Failing checks mark
    the campaign failed with the reasons (and emit nothing).  A stale command (the campaign
    was cancelled, re-scheduled, unscheduled, deleted or started otherwise) is ignored; a
    command that arrives early is put back until its time (queues cap their delays)."""
    c = store.find(deps, msg.account, msg.campaign)
    if c is None:
        return []
    token = _token(msg)
    if c.status == CampaignStatus.SENDING and c.send_token == token:
        return [started_event(c)]  # redelivered after we started: publish again
    if msg.at is not None:
        if c.status != CampaignStatus.SCHEDULED or c.scheduled_at != msg.at:
            return []
        wait = msg.at - deps.clock.now()
        if wait > EARLY_TOLERANCE:
            return [Later(msg, wait)]
    elif not can(c.status, Action.START):
        return []
    try:
        started = start(deps, msg.account, msg.campaign, token=token)
    except PreSendCheckFailed as e:
        _fail(deps, msg, "; ".join(e.reasons))
        return []
    return [started_event(started)]


def _fail(deps: Deps, msg: SendCampaign, reason: str) -> None:
    def step(c: Campaign) -> Campaign:
        if not can(c.status, Action.FAIL) or (msg.at is not None and c.scheduled_at != msg.at):
            raise _Skip
        # Re-check under the compare-and-set: the author may have fixed it meanwhile.
        reasons, _ = pre_send_problems(c, sending_lock=store.sending_lock(deps, msg.account))
        if not reasons:
            raise _Skip
        return c.transition(Action.FAIL, deps.clock.now(), reason="; ".join(reasons))

    with contextlib.suppress(_Skip, NotFound):
        store.change(deps, msg.account, msg.campaign, step)


def on_campaign_delivered(msg: CampaignDelivered, deps: Deps) -> list[Message | Later]:
    """Every planned recipient has an outcome: the campaign is sent, or failed when nobody
    could be reached (with delivery's reason).  Idempotent; ignored when the campaign was
    cancelled (or is gone), and for an earlier round than the campaign's last retry."""

    def step(c: Campaign) -> Campaign:
        if c.retried_at is not None and msg.at < c.retried_at:
            raise _Skip  # the outcome of the send before the retry, delivered late
        if msg.sent == 0 and msg.failed > 0 and can(c.status, Action.FAIL):
            reason = msg.reason or f"nothing could be delivered: all {msg.failed} recipients failed"
            return c.transition(Action.FAIL, deps.clock.now(), sent_at=msg.at, reason=reason[:500])
        if not can(c.status, Action.COMPLETE):
            raise _Skip
        return c.transition(Action.COMPLETE, deps.clock.now(), sent_at=msg.at)

    with contextlib.suppress(_Skip, NotFound):
        store.change(deps, msg.account, msg.campaign, step)
    return []
