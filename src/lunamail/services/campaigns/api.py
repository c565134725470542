"""Synchronous campaigns API for the CLI and HTTP: drafts, preview, test send, send now,
schedule, pause/resume/cancel.

Every function takes ``deps`` and ``account`` first.  Functions that start
something elsewhere *return* the message to publish (``CampaignSendStarted``,
``SendCampaign``, ``SendTest``, ``CampaignPaused``...) instead of publishing
it: the caller publishes once the call has succeeded.  Errors are the
exceptions of :mod:`.errors` (``NotFound``, ``InvalidInput`` with a field map,
``InvalidTemplate``, ``IllegalTransition``, ``PreSendCheckFailed``).

The audience belongs to the audience service: callers resolve list names to
ids before calling, and may pass ``audience_size`` (which they can count) so
an empty audience is refused here with the other reasons.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lunamail.domain.campaign_model import (
    Action,
    Attachment,
    Campaign,
    CampaignStatus,
    can,
)
from lunamail.domain.campaigns import (
    CampaignCancelled,
    CampaignPaused,
    CampaignResumed,
    CampaignRetryStarted,
    CampaignSendStarted,
    SendCampaign,
    SendTest,
)
from lunamail.lib import emails
from lunamail.lib.mime import extra_header_problems
from lunamail.lib.templating import Rendered, RenderProblem, TemplateProblem, compile_campaign
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import MAX_QUERY_LIMIT

from . import store
from .checks import (
    compile_or_reason,
    delivery_content,
    lock_problem,
    pre_send_problems,
    sender_problems,
)
from .errors import Conflict, InvalidInput, InvalidTemplate, PreSendCheckFailed

__all__ = [
    "SAMPLE_SUBSCRIBER",
    "CampaignPage",
    "cancel",
    "create_draft",
    "delete",
    "get",
    "is_editable",
    "list_campaigns",
    "parse_schedule",
    "pause",
    "preview",
    "resume",
    "retry",
    "schedule",
    "send_now",
    "start",
    "started_event",
    "test_send",
    "unschedule",
    "update_draft",
]

#: Who a preview is rendered for when the caller names nobody.
SAMPLE_SUBSCRIBER: Mapping[str, Any] = {
    "email": "jane.doe@example.com",
    "name": "Jane Doe",
    "fields": {},
}

MAX_NAME = 200
MAX_SUBJECT = 998  # RFC 5322 line limit
MAX_CONTENT = 350_000  # html + text + subject, chars: the item must stay under 400 KB
MAX_LISTS = 50
MAX_ATTACHMENTS = 10
MAX_TEST_ADDRESSES = 20
# Ids starting with "_" are reserved (the reports keep an account-level "_unmapped" report).
_ID_RE = re.compile(r"[A-Za-z0-9-][A-Za-z0-9_-]{0,63}")
_CONTENT_TYPE_RE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*")
_MAX_FILTER_ROUNDS = 20


@dataclass(frozen=True)
class CampaignPage:
    """One page of campaigns, newest first; pass ``cursor`` back for the next (None = end)."""

    items: list[Campaign]
    cursor: str | None


# ---------------------------------------------------------------- validation


def _text_or_none(text: str | None) -> str | None:
    # An empty text part is never what an author wants: derive it from the HTML instead.
    return text if text is not None and text.strip() else None


def _attachments(raw: Sequence[Attachment | Mapping[str, str]], errors: dict[str, str]) -> tuple[Attachment, ...]:
    out: list[Attachment] = []
    if len(raw) > MAX_ATTACHMENTS:
        errors["attachments"] = f"at most {MAX_ATTACHMENTS} attachments"
        return ()
    for n, a in enumerate(raw):
        if isinstance(a, Attachment):
            key, filename, ctype = a.key, a.filename, a.content_type
        else:
            key = str(a.get("key") or "")
            filename = str(a.get("filename") or "")
            ctype = str(a.get("content_type") or "application/octet-stream")
        where = f"attachments[{n}]"
        if not key:
            errors[where] = "needs the blob key of the uploaded file"
        elif not filename or len(filename) > 255 or any(c in filename for c in "/\\\r\n\0"):
            errors[where] = f"file name {filename!r} must be 1-255 characters without / or \\"
        elif not _CONTENT_TYPE_RE.fullmatch(ctype):
            errors[where] = f"content type {ctype!r} must look like type/subtype"
        else:
            out.append(Attachment(key, filename, ctype.lower()))
    return tuple(out)


def _lists(raw: Sequence[str], errors: dict[str, str]) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    ids = tuple(dict.fromkeys(str(x).strip() for x in raw))
    if any(not x for x in ids):
        errors["lists"] = "list ids must not be empty"
    elif len(ids) > MAX_LISTS:
        errors["lists"] = f"at most {MAX_LISTS} lists"
    return ids


def _validate(c: Campaign, attachments: Sequence[Attachment | Mapping[str, str]] | None,
              lists: Sequence[str] | None) -> Campaign:
    """Field checks, then the templates (which must compile and stay in the sandbox).
    A draft may be incomplete (no From yet); what it has must be well-formed."""
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    if attachments is not None:
        changes["attachments"] = _attachments(attachments, errors)
    if lists is not None:
        changes["lists"] = _lists(lists, errors)
    if not c.name.strip():
        errors["name"] = "required"
    elif len(c.name) > MAX_NAME:
        errors["name"] = f"at most {MAX_NAME} characters"
    if len(c.subject) > MAX_SUBJECT:
        errors["subject"] = f"at most {MAX_SUBJECT} characters"
    elif "\r" in c.subject or "\n" in c.subject:
        errors["subject"] = "must be a single line"
    for field in ("from_email", "reply_to"):
        value = str(getattr(c, field)).strip()
        if value:
            ok, why = emails.check(value)
            if ok is None:
                errors[field] = f"{value!r} is not a valid address: {why}"
    if "\r" in c.from_name or "\n" in c.from_name:
        errors["from_name"] = "must be a single line"
    problems = extra_header_problems(dict(c.headers))
    if problems or len(dict(c.headers)) != len(c.headers):
        errors["headers"] = "; ".join(problems) or "a header is given twice"
    size = len(c.html) + len(c.text or "") + len(c.subject)
    if size > MAX_CONTENT:
        errors["html"] = f"content too large ({size} characters, at most {MAX_CONTENT})"
    if errors:
        raise InvalidInput("invalid campaign", errors)
    try:
        compile_campaign(c.subject, c.html, c.text)
    except TemplateProblem as e:
        raise InvalidTemplate(e.part, e.line, e.message) from None
    return dataclasses.replace(c, **changes) if changes else c


# ---------------------------------------------------------------- drafts


def create_draft(
    deps: Deps,
    account: str,
    *,
    name: str,
    subject: str = "",
    from_name: str = "",
    from_email: str = "",
    reply_to: str = "",
    html: str = "",
    text: str | None = None,
    lists: Sequence[str] = (),
    attachments: Sequence[Attachment | Mapping[str, str]] = (),
    campaign_id: str | None = None,
    track_opens: bool | None = None,
    track_clicks: bool | None = None,
    headers: Mapping[str, str] | None = None,
) -> Campaign:
    """Save a new draft.  ``text=None`` (or blank) derives the text part from the HTML at
    send time.  ``campaign_id`` makes creation idempotent: a retry with the same content
    returns the campaign already saved; other content under that id is a Conflict.
    Raises InvalidInput / InvalidTemplate (with part and line)."""
    now = deps.clock.now()
    if campaign_id is not None and not _ID_RE.fullmatch(campaign_id):
        raise InvalidInput("invalid campaign", {"id": "1-64 letters, digits, '-' or '_'"})
    c = Campaign(
        account=account,
        id=campaign_id or store.new_id(now),
        name=name.strip(),
        subject=subject.strip(),
        from_name=from_name.strip(),
        from_email=from_email.strip(),
        reply_to=reply_to.strip(),
        html=html,
        text=_text_or_none(text),
        track_opens=track_opens,
        track_clicks=track_clicks,
        headers=tuple((headers or {}).items()),
        created_at=now,
        updated_at=now,
    )
    c = _validate(c, attachments, lists)
    try:
        store.insert(deps, c)
    except Conflict:
        existing = store.find(deps, account, c.id) if campaign_id is not None else None
        if existing is None or _content(existing) != _content(c):
            raise Conflict(f"campaign {c.id!r} already exists with other content") from None
        return existing  # a retried create
    return c


def _content(c: Campaign) -> tuple[Any, ...]:
    """What a create sets: equal for a retry of the same request."""
    return (c.name, c.subject, c.from_name, c.from_email, c.reply_to, c.html, c.text,
            tuple(c.lists), tuple(c.attachments))


def update_draft(
    deps: Deps,
    account: str,
    campaign_id: str,
    *,
    name: str | None = None,
    subject: str | None = None,
    from_name: str | None = None,
    from_email: str | None = None,
    reply_to: str | None = None,
    html: str | None = None,
    text: str | None = None,
    lists: Sequence[str] | None = None,
    attachments: Sequence[Attachment | Mapping[str, str]] | None = None,
    track_opens: bool | None = None,
    track_clicks: bool | None = None,
    headers: Mapping[str, str] | None = None,
) -> Campaign:
    """Change a draft (only a draft: IllegalTransition otherwise).  ``None`` keeps a field;
    ``text=""`` goes back to a text part derived from the HTML."""
    fields: dict[str, Any] = {
        k: v.strip()
        for k, v in {
            "name": name, "subject": subject, "from_name": from_name,
            "from_email": from_email, "reply_to": reply_to,
        }.items()
        if v is not None
    }  # fmt: skip
    if html is not None:
        fields["html"] = html
    if text is not None:
        fields["text"] = _text_or_none(text)
    if track_opens is not None:
        fields["track_opens"] = track_opens
    if track_clicks is not None:
        fields["track_clicks"] = track_clicks
    if headers is not None:
        fields["headers"] = tuple(headers.items())

    def step(c: Campaign) -> Campaign:
        changed = c.transition(Action.EDIT, deps.clock.now(), **fields)
        return _validate(changed, attachments, lists)

    return store.change(deps, account, campaign_id, step)[1]


def get(deps: Deps, account: str, campaign_id: str) -> Campaign:
    """The campaign, or NotFound."""
    return store.load(deps, account, campaign_id)


def list_campaigns(
    deps: Deps,
    account: str,
    *,
    status: CampaignStatus | str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> CampaignPage:
    """Campaigns newest first, optionally only those in ``status``.  A filtered page may hold
    fewer than ``limit`` items even when more follow: go on while ``cursor`` is set."""
    if not 1 <= limit <= MAX_QUERY_LIMIT:
        raise InvalidInput("invalid listing", {"limit": f"between 1 and {MAX_QUERY_LIMIT}"})
    wanted: CampaignStatus | None = None
    if status is not None:
        try:
            wanted = CampaignStatus(status)
        except ValueError:
            known = ", ".join(s.value for s in CampaignStatus)
            raise InvalidInput("invalid listing", {"status": f"one of {known}"}) from None
    items: list[Campaign] = []
    for _ in range(_MAX_FILTER_ROUNDS):
        page = deps.store.query(
            store.pk(account), prefix=store.SK_PREFIX, limit=limit - len(items),
            cursor=cursor, reverse=True,
        )  # fmt: skip
        cursor = page.cursor
        for item in page.items:
            c = store.from_item(item)
            if wanted is None or c.status == wanted:
                items.append(c)
        if cursor is None or len(items) >= limit:
            break
    return CampaignPage(items, cursor)


def delete(deps: Deps, account: str, campaign_id: str) -> None:
    """Delete a draft (or a cancelled/failed campaign); IllegalTransition otherwise."""
    c = store.load(deps, account, campaign_id)
    c.transition(Action.DELETE, deps.clock.now())  # raises when not allowed
    store.remove(deps, c)


# ---------------------------------------------------------------- preview and test


def preview(
    deps: Deps,
    account: str,
    campaign_id: str,
    subscriber: Mapping[str, Any] | None = None,
) -> Rendered:
    """Subject, HTML and text as ``subscriber`` (default: a sample person) would get them,
    with placeholder unsubscribe/view links.  Works in any state."""
    c = store.load(deps, account, campaign_id)
    compiled, why = compile_or_reason(c)
    if compiled is None:
        raise PreSendCheckFailed([why])
    base = deps.settings.base_url.rstrip("/")
    sub = dict(SAMPLE_SUBSCRIBER if subscriber is None else subscriber)
    sub.setdefault("fields", {})
    try:
        return compiled.render(
            sub,
            unsubscribe_url=f"{base}/u/preview",
            view_in_browser_url=f"{base}/v/preview",
            campaign={"id": c.id, "name": c.name, "subject": c.subject},
        )
    except RenderProblem as e:
        raise InvalidTemplate(e.part, None, e.message) from None


def test_send(deps: Deps, account: str, campaign_id: str, addresses: Sequence[str],
              test_id: str = "", *, from_problems: Sequence[str] = ()) -> SendTest:
    """The command that sends the campaign to ``addresses`` as a test (delivery marks it as a
    test and does not count it).  Needs a valid sender, compiling templates and an
    account whose sending is not locked."""
    if isinstance(addresses, str):
        addresses = [addresses]
    clean: list[str] = []
    errors: dict[str, str] = {}
    for n, raw in enumerate(addresses):
        ok, why = emails.check(raw)
        if ok is None:
            errors[f"addresses[{n}]"] = f"{raw!r}: {why}"
        elif ok not in clean:
            clean.append(ok)
    if not clean and not errors:
        errors["addresses"] = "give at least one address"
    elif len(clean) > MAX_TEST_ADDRESSES:
        errors["addresses"] = f"at most {MAX_TEST_ADDRESSES} addresses"
    if errors:
        raise InvalidInput("invalid test send", errors)
    c = store.load(deps, account, campaign_id)
    # A test copy is still mail from the account: a guard lock stops it like a send.
    problems = sender_problems(c)
    reasons = lock_problem(store.sending_lock(deps, account)) + problems + ([] if problems else list(from_problems))
    compiled, why = compile_or_reason(c)
    if compiled is None:
        reasons.append(why)
    if reasons or compiled is None:
        raise PreSendCheckFailed(reasons)
    return SendTest(
        account=account, campaign=c.id, addresses=tuple(clean),
        content=delivery_content(c, compiled), test_id=test_id,
    )


# ---------------------------------------------------------------- sending


def started_event(c: Campaign) -> CampaignSendStarted:
    """The CampaignSendStarted of a campaign that is sending (also used to re-emit it)."""
    compiled, why = compile_or_reason(c)
    if compiled is None:  # it compiled when the send started; only a code change gets here
        raise PreSendCheckFailed([why])
    return CampaignSendStarted(
        account=c.account,
        campaign=c.id,
        lists=c.lists,
        content=delivery_content(c, compiled),
        started_at=float(c.started_at or c.updated_at),
    )


def start(
    deps: Deps, account: str, campaign_id: str, *, token: str, audience_size: int | None = None,
    from_problems: Sequence[str] = (),
) -> Campaign:
    """Run the checks and move draft/scheduled -> sending, remembering ``token`` (which
    trigger started it).  Shared by :func:`send_now` and the scheduled-send handler."""

    lock = store.sending_lock(deps, account)

    def step(c: Campaign) -> Campaign:
        now = deps.clock.now()
        c.transition(Action.START, now)  # the state error first: it is the clearer one
        reasons, _ = pre_send_problems(c, audience_size=audience_size, sending_lock=lock,
                                       from_problems=from_problems)
        if reasons:
            raise PreSendCheckFailed(reasons)
        return c.transition(Action.START, now, started_at=now, send_token=token, reason="")

    return store.change(deps, account, campaign_id, step)[1]


def send_now(
    deps: Deps, account: str, campaign_id: str, *, audience_size: int | None = None,
    from_problems: Sequence[str] = (),
) -> CampaignSendStarted:
    """Check and start sending a draft or scheduled campaign; returns the event to publish
    (delivery plans the audience from it).  Raises PreSendCheckFailed with every reason
    (``from_problems``: the caller's verdict on the From's sending domain)."""
    c = start(deps, account, campaign_id, token=f"now:{deps.clock.now()!r}",
              audience_size=audience_size, from_problems=from_problems)
    return started_event(c)


def parse_schedule(at: datetime | str, tz: str | None = None) -> tuple[datetime, str | None]:
    """``at`` as an aware UTC datetime, and the zone name to remember for display.

    Accepts an aware datetime, an ISO 8601 string with an offset (``...+02:00``, ``...Z``),
    or a local time with a zone: ``tz="Europe/Paris"``, ``"2030-06-01T09:00 Europe/Paris"``
    or ``"2030-06-01T09:00[Europe/Paris]"``.  A local time that a clock change skips is
    refused; one that occurs twice means the first occurrence.
    """
    zone_name = tz
    if isinstance(at, str):
        text = at.strip()
        m = re.fullmatch(r"(.+?)(?:\[([^\]]+)\]|\s+([A-Za-z][\w+-]*(?:/[\w+-]+)*))", text)
        if m is not None and m.group(1) and re.match(r"\d{4}-", m.group(1)):
            text, zone_name = m.group(1), m.group(2) or m.group(3)
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput("invalid schedule", {"at": f"{at!r} is not an ISO 8601 date-time"}) from None
    else:
        when = at
    zone = None
    if zone_name:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput("invalid schedule", {"tz": f"unknown time zone {zone_name!r}"}) from None
    if when.tzinfo is None:
        if zone is None:
            raise InvalidInput("invalid schedule", {
                "at": "give a UTC offset (e.g. +02:00) or a time zone (e.g. Europe/Paris)"})
        local = when.replace(tzinfo=zone)
        back = local.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        if back != when:
            raise InvalidInput("invalid schedule", {
                "at": f"{when.isoformat()} does not exist in {zone_name} (the clocks skip it)"})
        when = local
    return when.astimezone(UTC), zone_name


def schedule(
    deps: Deps,
    account: str,
    campaign_id: str,
    at: datetime | str,
    *,
    tz: str | None = None,
    audience_size: int | None = None,
    from_problems: Sequence[str] = (),
) -> SendCampaign:
    """Schedule (or move) the send of a draft or scheduled campaign to ``at`` (see
    :func:`parse_schedule`); stored as UTC.  The checks run now too, so a broken campaign
    is refused today rather than failing at 3 a.m.  Returns the SendCampaign command; the
    caller enqueues it with a delay of ``cmd.at - now`` seconds."""
    when, zone_name = parse_schedule(at, tz)
    epoch = when.timestamp()
    now = deps.clock.now()
    if epoch <= now:
        raise InvalidInput("invalid schedule", {"at": f"{when.isoformat()} is in the past"})
    if epoch - now > timedelta(days=366).total_seconds():
        raise InvalidInput("invalid schedule", {"at": "at most a year ahead"})

    lock = store.sending_lock(deps, account)

    def step(c: Campaign) -> Campaign:
        c.transition(Action.SCHEDULE, now)
        reasons, _ = pre_send_problems(c, audience_size=audience_size, sending_lock=lock,
                                       from_problems=from_problems)
        if reasons:
            raise PreSendCheckFailed(reasons)
        return c.transition(Action.SCHEDULE, now, scheduled_at=epoch, schedule_tz=zone_name)

    after = store.change(deps, account, campaign_id, step)[1]
    return SendCampaign(account=account, campaign=after.id, at=epoch)


def unschedule(deps: Deps, account: str, campaign_id: str) -> Campaign:
    """Back from scheduled to draft (e.g. to edit it); the pending SendCampaign is ignored."""

    def step(c: Campaign) -> Campaign:
        return c.transition(Action.UNSCHEDULE, deps.clock.now(), scheduled_at=None, schedule_tz=None)

    return store.change(deps, account, campaign_id, step)[1]


def pause(deps: Deps, account: str, campaign_id: str, reason: str = "") -> CampaignPaused:
    """Pause a sending campaign; delivery stops handing out batches when it sees the event."""
    reason = " ".join(reason.split())[:500]

    def step(c: Campaign) -> Campaign:
        return c.transition(Action.PAUSE, deps.clock.now(), reason=reason)

    now = deps.clock.now()
    store.change(deps, account, campaign_id, step)
    return CampaignPaused(account=account, campaign=campaign_id, reason=reason, at=now)


def resume(deps: Deps, account: str, campaign_id: str) -> CampaignResumed:
    """Resume a paused campaign (refused while the account's sending is locked: resuming
    would send)."""
    lock = store.sending_lock(deps, account)

    def step(c: Campaign) -> Campaign:
        resumed = c.transition(Action.RESUME, deps.clock.now(), reason="")
        if lock is not None:
            raise PreSendCheckFailed(lock_problem(lock))
        return resumed

    now = deps.clock.now()
    store.change(deps, account, campaign_id, step)
    return CampaignResumed(account=account, campaign=campaign_id, at=now)


def retry(deps: Deps, account: str, campaign_id: str) -> CampaignRetryStarted:
    """Send a sent (or failed) campaign again to its retryable failures (refused while the
    account's sending is locked, like a resume)."""
    lock = store.sending_lock(deps, account)
    now = deps.clock.now()

    def step(c: Campaign) -> Campaign:
        again = c.transition(Action.RETRY, now, reason="", retried_at=now)
        if lock is not None:
            raise PreSendCheckFailed(lock_problem(lock))
        return again

    store.change(deps, account, campaign_id, step)
    return CampaignRetryStarted(account=account, campaign=campaign_id, at=now)


def cancel(deps: Deps, account: str, campaign_id: str) -> CampaignCancelled:
    """Cancel a scheduled, sending or paused campaign (for good: what went out stays out)."""

    def step(c: Campaign) -> Campaign:
        return c.transition(Action.CANCEL, deps.clock.now())

    now = deps.clock.now()
    store.change(deps, account, campaign_id, step)
    return CampaignCancelled(account=account, campaign=campaign_id, at=now)


def is_editable(c: Campaign) -> bool:
    """Whether :func:`update_draft` would accept changes (for UIs)."""
    return can(c.status, Action.EDIT)


def checklist(deps: Deps, account: str, campaign_id: str, *, audience_size: int | None = None,
              from_problems: Sequence[str] = ()) -> list[str]:
    """Every reason the campaign could not be sent now (empty: ready), without sending:
    the console's pre-send checklist shows them with their fixes."""
    c = store.load(deps, account, campaign_id)
    reasons, _ = pre_send_problems(c, audience_size=audience_size, sending_lock=store.sending_lock(deps, account),
                                   from_problems=from_problems)
    return reasons
