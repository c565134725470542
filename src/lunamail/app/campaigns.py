"""Campaign use cases: drafts, preview, test, send, schedule, pause, resume, cancel.

The orchestration the doors used to hold lives here: list names become ids (the
audience service owns lists), the audience is counted before a send or a schedule
so an empty one is refused with the other pre-send reasons, and the messages the
campaigns service returns are emitted (a refused call emits nothing).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lunamail.domain.campaign_model import Action, Campaign, next_status
from lunamail.domain.messages import Later
from lunamail.lib.templating import Rendered
from lunamail.services.accounts import users as accounts_users
from lunamail.services.accounts.errors import TooManyRequests
from lunamail.services.audience import api as audience_api
from lunamail.services.audience.errors import NotFound as ListNotFound
from lunamail.services.campaigns import api as campaigns_api
from lunamail.services.campaigns.errors import PreSendCheckFailed
from lunamail.services.delivery import api as delivery_api

from .base import Actor, Emitted, Env, Page, Permission, command, query
from .domains import from_domain_check
from .errors import Conflict, InvalidInput


@dataclass(frozen=True)
class NewCampaign:
    """A draft may be incomplete; the pre-send checks say what is missing at send time."""

    name: str
    subject: str = ""
    from_name: str = ""
    from_email: str = ""
    reply_to: str = ""
    html: str = ""
    text: str | None = None  # None or blank: derived from the HTML
    lists: Sequence[str] = ()  # list ids or names
    id: str | None = None  # a client-chosen id (Conflict when taken)
    track_opens: bool | None = None  # None: the installation's default
    track_clicks: bool | None = None
    headers: Mapping[str, str] | None = None  # extra headers (one line each, none of ours)


@dataclass(frozen=True)
class CampaignChanges:
    """Only the fields given (not None) change; ``text=""`` goes back to a derived text part."""

    name: str | None = None
    subject: str | None = None
    from_name: str | None = None
    from_email: str | None = None
    reply_to: str | None = None
    html: str | None = None
    text: str | None = None
    lists: Sequence[str] | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class SendStarted:
    campaign: Campaign
    audience_size: int  # subscribed members across its lists (an upper bound: duplicates count twice)
    tracking: Mapping[str, bool] | None = None  # {"opens", "clicks"}: what the send tracks
    warnings: tuple[str, ...] = ()  # what the send may cost (e.g. no DKIM signature)


def send_warnings(env: Env, c: Campaign) -> tuple[str, ...]:
    """What the pre-send summary warns about: mail that goes out without a DKIM signature
    (receivers then distrust it, and RFC 8058 tells them not to offer one-click unsubscribe),
    or signed for a domain whose DNS records are not (or no longer) verified."""
    return from_domain_check(env, c.account, c.from_email).warnings


def tracking_of(env: Env, c: Campaign) -> dict[str, bool]:
    """Whether the campaign's send tracks opens and clicks (its choice, else the default)."""
    s = env.deps.settings
    return {"opens": s.track_opens if c.track_opens is None else c.track_opens,
            "clicks": s.track_clicks if c.track_clicks is None else c.track_clicks}


@dataclass(frozen=True)
class TestQueued:
    campaign: str
    addresses: tuple[str, ...]
    test_id: str = ""  # what to ask :func:`test_result` about


@dataclass(frozen=True)
class TestAnswer:
    address: str
    outcome: str  # "sent" (the relay accepted it) or "failed"
    code: int  # the relay's reply code (0: no answer at all)
    reply: str  # what the relay (or the connection) said


@dataclass(frozen=True)
class TestResult:
    campaign: str
    test_id: str
    status: str  # "queued" (not tried yet), "sent" (every address accepted) or "failed"
    answers: tuple[TestAnswer, ...] = ()


@dataclass(frozen=True)
class RetryStarted:
    campaign: Campaign
    recipients: int  # whose last outcome is a retryable failure: they are sent again


@dataclass(frozen=True)
class Scheduled:
    campaign: Campaign
    delay_seconds: float  # from now until the send


def list_ids(env: Env, actor: Actor, refs: Sequence[str]) -> list[str]:
    """List names or ids -> ids (deduplicated), or InvalidInput naming every unknown entry."""
    ids: list[str] = []
    unknown: dict[str, str] = {}
    for n, ref in enumerate(refs):
        try:
            list_id = str(audience_api.get_list(env.deps, actor.account, ref)["id"])
        except ListNotFound:
            unknown[f"lists[{n}]"] = f"no list {ref!r}"
            continue
        if list_id not in ids:
            ids.append(list_id)
    if unknown:
        raise InvalidInput("unknown list", unknown)
    return ids


def audience_size(env: Env, actor: Actor, c: Campaign) -> int:
    """Subscribed members across the campaign's lists.  A list deleted since the draft was
    saved refuses the send as the other pre-send checks do."""
    total = 0
    gone: list[str] = []
    for list_id in c.lists:
        try:
            total += int(audience_api.count_by_status(env.deps, actor.account, list_id).get("subscribed", 0))
        except ListNotFound:
            gone.append(f"list {list_id!r} no longer exists")
    if gone:
        raise PreSendCheckFailed(gone)
    return total


@command(Permission.CAMPAIGNS)
def create(env: Env, actor: Actor, draft: NewCampaign) -> Emitted[Campaign]:
    """Save a new draft."""
    c = campaigns_api.create_draft(
        env.deps, actor.account, name=draft.name, subject=draft.subject, from_name=draft.from_name,
        from_email=draft.from_email, reply_to=draft.reply_to, html=draft.html, text=draft.text,
        lists=list_ids(env, actor, draft.lists), campaign_id=draft.id, track_opens=draft.track_opens,
        track_clicks=draft.track_clicks, headers=draft.headers,
    )  # fmt: skip
    return Emitted(c)


@command(Permission.CAMPAIGNS)
def edit(env: Env, actor: Actor, campaign_id: str, changes: CampaignChanges) -> Emitted[Campaign]:
    """Change a draft (IllegalTransition once it is scheduled or sent)."""
    lists = None if changes.lists is None else list_ids(env, actor, changes.lists)
    c = campaigns_api.update_draft(
        env.deps, actor.account, campaign_id, name=changes.name, subject=changes.subject,
        from_name=changes.from_name, from_email=changes.from_email, reply_to=changes.reply_to,
        html=changes.html, text=changes.text, lists=lists, track_opens=changes.track_opens,
        track_clicks=changes.track_clicks, headers=changes.headers,
    )  # fmt: skip
    return Emitted(c)


@command(Permission.CAMPAIGNS)
def delete(env: Env, actor: Actor, campaign_id: str) -> Emitted[None]:
    """Delete a draft, cancelled or failed campaign."""
    campaigns_api.delete(env.deps, actor.account, campaign_id)
    return Emitted(None)


@query()
def get(env: Env, actor: Actor, campaign_id: str) -> Campaign:
    return campaigns_api.get(env.deps, actor.account, campaign_id)


@query()
def list_campaigns(
    env: Env, actor: Actor, *, status: str | None = None, limit: int = 50, cursor: str | None = None
) -> Page[Campaign]:
    """Campaigns newest first.  A filtered page may hold fewer than ``limit`` items while
    more follow: go on while ``next_cursor`` is set."""
    found = campaigns_api.list_campaigns(env.deps, actor.account, status=status, limit=limit, cursor=cursor)
    return Page(found.items, found.cursor)


@query(Permission.CAMPAIGNS)
def preview(env: Env, actor: Actor, campaign_id: str, subscriber: Mapping[str, Any] | None = None) -> Rendered:
    """Subject, HTML and text as ``subscriber`` (default: a sample person) would get them."""
    return campaigns_api.preview(env.deps, actor.account, campaign_id, subscriber)


@command(Permission.CAMPAIGNS)
def test(env: Env, actor: Actor, campaign_id: str, addresses: Sequence[str]) -> Emitted[TestQueued]:
    """Queue a test copy to ``addresses`` (marked as a test, not counted in reports); what
    the relay answered is then read with :func:`test_result`.  An account sends at most
    ``test_copies_per_hour`` of them: a test skips the suppression list, so without a cap
    an editor could mail anyone, in bulk."""
    test_id = secrets.token_hex(8)
    draft = campaigns_api.get(env.deps, actor.account, campaign_id)
    cmd = campaigns_api.test_send(env.deps, actor.account, campaign_id, addresses, test_id=test_id,
                                  from_problems=from_domain_check(env, actor.account, draft.from_email).problems)
    limit = env.deps.settings.test_copies_per_hour
    if not accounts_users.throttle(env.deps, f"test-copies:{actor.account}", limit=limit, window=3600,
                                   cost=len(cmd.addresses)):
        raise TooManyRequests(f"this account has sent its {limit} test copies of the hour; try again later "
                              "or raise the test_copies_per_hour setting")
    return Emitted(TestQueued(campaign_id, tuple(cmd.addresses), test_id), [cmd])


@query(Permission.CAMPAIGNS)
def test_result(env: Env, actor: Actor, campaign_id: str, test_id: str) -> TestResult:
    """What the relay answered for each address of a test send: ``sent`` only when it
    accepted every one; ``queued`` while it has not been tried."""
    campaigns_api.get(env.deps, actor.account, campaign_id)
    found = delivery_api.test_result(env.deps, actor.account, campaign_id, test_id)
    if found is None:
        return TestResult(campaign_id, test_id, "queued")
    answers = tuple(TestAnswer(str(a["address"]), str(a["outcome"]), int(a.get("code") or 0), str(a.get("reply", "")))
                    for a in found)
    status = "sent" if answers and all(a.outcome == "sent" for a in answers) else "failed"
    return TestResult(campaign_id, test_id, status, answers)


@command(Permission.SEND)
def send(env: Env, actor: Actor, campaign_id: str) -> Emitted[SendStarted]:
    """Check and start sending now (PreSendCheckFailed with every reason otherwise)."""
    draft = campaigns_api.get(env.deps, actor.account, campaign_id)
    size = audience_size(env, actor, draft)
    started = campaigns_api.send_now(env.deps, actor.account, campaign_id, audience_size=size,
                                     from_problems=from_domain_check(env, actor.account, draft.from_email).problems)
    c = campaigns_api.get(env.deps, actor.account, campaign_id)
    return Emitted(SendStarted(c, size, tracking_of(env, c), send_warnings(env, c)), [started])


@command(Permission.SEND)
def schedule(env: Env, actor: Actor, campaign_id: str, at: str, *, tz: str | None = None) -> Emitted[Scheduled]:
    """Schedule (or move) the send to ``at``: ISO 8601 with an offset, or a local time with ``tz``."""
    draft = campaigns_api.get(env.deps, actor.account, campaign_id)
    size = audience_size(env, actor, draft)
    cmd = campaigns_api.schedule(env.deps, actor.account, campaign_id, at, tz=tz, audience_size=size,
                                 from_problems=from_domain_check(env, actor.account, draft.from_email).problems)
    delay = max(0.0, float(cmd.at or 0.0) - env.deps.clock.now())
    after = campaigns_api.get(env.deps, actor.account, campaign_id)
    return Emitted(Scheduled(after, delay), [Later(cmd, delay)])


@command(Permission.SEND)
def pause(env: Env, actor: Actor, campaign_id: str, *, reason: str = "") -> Emitted[Campaign]:
    """Pause a sending campaign.  Returns once every running batch has seen the pause (see
    :func:`lunamail.services.delivery.api.apply_stop`): from then on only what a connection
    already holds finishes; the rest waits until it is resumed."""
    event = campaigns_api.pause(env.deps, actor.account, campaign_id, reason)
    time.sleep(delivery_api.apply_stop(env.deps, event))
    return Emitted(campaigns_api.get(env.deps, actor.account, campaign_id), [event])


@command(Permission.SEND)
def resume(env: Env, actor: Actor, campaign_id: str) -> Emitted[Campaign]:
    event = campaigns_api.resume(env.deps, actor.account, campaign_id)
    return Emitted(campaigns_api.get(env.deps, actor.account, campaign_id), [event])


@command(Permission.SEND)
def retry_failed(env: Env, actor: Actor, campaign_id: str) -> Emitted[RetryStarted]:
    """Send a sent (or failed) campaign again to the recipients whose last outcome is a
    retryable failure (4xx: mailbox full, relay unreachable, connection dropped, once the
    send's own retries ran out); nobody else.  Asking twice sends nobody twice: a second
    call while the first runs is refused, one after it finds only what failed again.
    With nothing to retry, nothing changes."""
    c = campaigns_api.get(env.deps, actor.account, campaign_id)
    next_status(c.status, Action.RETRY)  # IllegalTransition unless sent or failed
    if not delivery_api.finished(env.deps, actor.account, campaign_id):
        raise Conflict(f"campaign {campaign_id} is still being delivered", {"campaign": campaign_id})
    n = delivery_api.retryable_count(env.deps, actor.account, campaign_id)
    if n == 0:
        return Emitted(RetryStarted(c, 0))
    event = campaigns_api.retry(env.deps, actor.account, campaign_id)
    return Emitted(RetryStarted(campaigns_api.get(env.deps, actor.account, campaign_id), n), [event])


@command(Permission.SEND)
def cancel(env: Env, actor: Actor, campaign_id: str) -> Emitted[Campaign]:
    """Cancel a scheduled, sending or paused campaign; nothing more is sent.  Returns once
    every running batch has seen it (only what a connection already holds finishes)."""
    event = campaigns_api.cancel(env.deps, actor.account, campaign_id)
    time.sleep(delivery_api.apply_stop(env.deps, event))
    return Emitted(campaigns_api.get(env.deps, actor.account, campaign_id), [event])


__all__ = [
    "CampaignChanges",
    "NewCampaign",
    "RetryStarted",
    "Scheduled",
    "SendStarted",
    "TestAnswer",
    "TestQueued",
    "TestResult",
    "audience_size",
    "cancel",
    "checklist",
    "create",
    "delete",
    "edit",
    "get",
    "list_campaigns",
    "list_ids",
    "pause",
    "preview",
    "resume",
    "retry_failed",
    "schedule",
    "send",
    "test",
    "test_result",
    "unschedule",
]  # fmt: skip


@query()
def checklist(env: Env, actor: Actor, campaign_id: str) -> list[str]:
    """Every reason the campaign could not be sent now, with its fix (empty: ready)."""
    c = campaigns_api.get(env.deps, actor.account, campaign_id)
    try:
        size: int | None = audience_size(env, actor, c)
    except PreSendCheckFailed as exc:
        return list(exc.reasons)
    return campaigns_api.checklist(env.deps, actor.account, campaign_id, audience_size=size,
                                   from_problems=from_domain_check(env, actor.account, c.from_email).problems)


@command(Permission.SEND)
def unschedule(env: Env, actor: Actor, campaign_id: str) -> Emitted[Campaign]:
    """Take a scheduled campaign back to draft (the scheduled trigger then does nothing)."""
    return Emitted(campaigns_api.unschedule(env.deps, actor.account, campaign_id))
