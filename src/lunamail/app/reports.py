"""Report use cases: read a campaign's report, export recipients, resend to non-openers.

``resend`` composes three services (reports for who did not open, audience for the new
list and its import, campaigns for the follow-up draft); services never call each
other, so this layer is where that happens.  The import of a resend list is run to
its end inside the call (one chunk per handler run), so the draft it returns already
has its audience; the import's events are emitted with the result.
"""

from __future__ import annotations

import csv
import io
import secrets
import tempfile
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from lunamail.domain.audience import ImportChunk
from lunamail.domain.messages import Message
from lunamail.lib import csvsafe
from lunamail.services.audience import api as audience_api
from lunamail.services.audience import handlers as audience_handlers
from lunamail.services.audience.errors import Conflict as ListConflict
from lunamail.services.campaigns import api as campaigns_api
from lunamail.services.campaigns.errors import NotFound as CampaignNotFound
from lunamail.services.delivery import api as delivery_api
from lunamail.services.delivery import ledger
from lunamail.services.reports import api as reports_api
from lunamail.services.reports.keys import UNMAPPED

from .base import Actor, Emitted, Env, Page, Permission, command, query
from .errors import Conflict, InvalidInput

Report = dict[str, Any]

#: Who can be exported: each outcome's recipients, in address order.
EXPORTS: tuple[str, ...] = reports_api.EXPORTS
RESEND_TARGETS: tuple[str, ...] = ("non-openers",)
#: The outcomes the per-recipient ledger filters by.
LEDGER_STATUSES: tuple[str, ...] = ledger.STATUSES


@dataclass(frozen=True)
class Resent:
    campaign: str  # the follow-up draft
    list: str  # the new list of the recipients
    recipients: int  # subscribed members of that list
    exported: int  # addresses the export found
    import_counts: dict[str, int]


def _check_campaign(env: Env, actor: Actor, campaign: str) -> None:
    """Refuse unknown ids (a typo would otherwise show an empty report); the account's
    unmapped feedback has a report but no campaign."""
    if campaign != UNMAPPED:
        campaigns_api.get(env.deps, actor.account, campaign)


@query()
def campaign_report(env: Env, actor: Actor, campaign: str) -> Report:
    """Counters, rates, status and progress of a campaign (or of ``_unmapped`` feedback),
    with the failures by reason (code and enhanced status) from delivery's counters, why
    it failed or was paused (``reason``), and whether the send is ``stalled`` (the relay
    refuses connections, times out or defers everything: the reason and since when)."""
    c = campaigns_api.get(env.deps, actor.account, campaign) if campaign != UNMAPPED else None
    report = reports_api.campaign_report(env.deps, actor.account, campaign)
    reasons = ledger.failure_reasons(env.deps, actor.account, campaign) if c is not None else []
    report["failures"] = {"total": report.get("failed", 0), "top": reasons[:10]}
    report["reason"] = c.reason if c is not None and c.status in ("failed", "paused") else ""
    sending = c is not None and report.get("status") == "sending"
    stalled = delivery_api.stalled(env.deps, actor.account, campaign) if sending else None
    report["stalled"] = stalled
    if stalled is not None:
        report["status"] = "stalled"
    return report


#: How many campaigns one :func:`summaries` call reads (a listing's page).
MAX_SUMMARIES = 200


@query()
def summaries(env: Env, actor: Actor, campaigns: Sequence[str]) -> dict[str, Report]:
    """Counters, rates, status and progress of many campaigns of the actor's account (a
    listing's rows: no links, no failure reasons), in one batched read whatever their
    number.  An id with no report yet gets zero counters."""
    if len(campaigns) > MAX_SUMMARIES:
        raise InvalidInput(f"at most {MAX_SUMMARIES} campaigns at once", {"campaigns": f"{len(campaigns)} given"})
    return reports_api.campaign_summaries(env.deps, actor.account, campaigns)


@query()
def recipients(
    env: Env, actor: Actor, campaign: str, *, status: str | None = None, limit: int = 100,
    cursor: str | None = None,
) -> Page[dict[str, Any]]:
    """One page of the per-recipient ledger: each planned recipient's current outcome
    (``sent`` with the relay's reply, ``deferred`` with attempts and the last reply,
    ``failed`` with code, enhanced status, text and whether it is retryable, ``skipped``
    with the reason it was left out), filtered by ``status``."""
    if status is not None and status not in ledger.STATUSES:
        raise InvalidInput(f"unknown status {status!r}", {"status": "one of " + ", ".join(ledger.STATUSES)})
    _check_campaign(env, actor, campaign)
    try:
        rows, nxt = ledger.page(env.deps, actor.account, campaign, status=status, limit=limit, cursor=cursor)
    except ValueError as e:
        raise InvalidInput(str(e), {"cursor": "as returned by the previous page"}) from e
    return Page(rows, nxt)


LEDGER_COLUMNS = ("email", "status", "code", "enhanced", "reply", "attempts", "retryable", "reason", "at")


@query()
def recipients_csv(env: Env, actor: Actor, campaign: str, *, status: str | None = None) -> Iterator[str]:
    """The ledger (of ``status``) as CSV text, streamed a few lines at a time."""
    if status is not None and status not in ledger.STATUSES:
        raise InvalidInput(f"unknown status {status!r}", {"status": "one of " + ", ".join(ledger.STATUSES)})
    _check_campaign(env, actor, campaign)

    return safe_csv(LEDGER_COLUMNS, ledger.iterate(env.deps, actor.account, campaign, status=status))


@query()
def report_version(env: Env, actor: Actor, campaign: str) -> Hashable:
    """Changes whenever the report does (one query): live views poll it."""
    return reports_api.report_version(env.deps, actor.account, campaign)


#: The status a live view sees once the campaign it watches has been deleted.
GONE = "deleted"


@query()
def campaign_status(env: Env, actor: Actor, campaign: str) -> str:
    """The campaign's status, or ``GONE`` once it is deleted: a live view ends on it
    instead of failing (unknown ids are refused where the view starts)."""
    try:
        return str(campaigns_api.get(env.deps, actor.account, campaign).status)
    except CampaignNotFound:
        return GONE


@query()
def live_report(env: Env, actor: Actor, campaign: str) -> Report | None:
    """``campaign_report`` for a live view, or None once the campaign is deleted."""
    try:
        return campaign_report(env, actor, campaign)
    except CampaignNotFound:
        return None


@query()
def timeseries(
    env: Env, actor: Actor, campaign: str, *, limit: int = 1000, since: float | None = None
) -> list[dict[str, Any]]:
    """Per-minute counters, oldest first, from ``since`` (epoch seconds)."""
    _check_campaign(env, actor, campaign)
    return reports_api.timeseries(env.deps, actor.account, campaign, limit=limit, since=since)


@query()
def export(env: Env, actor: Actor, campaign: str, which: str) -> Iterator[dict[str, Any]]:
    """Stream the recipients of one outcome (``EXPORTS``) as ``{"email", ...}`` rows."""
    if which not in EXPORTS:
        raise InvalidInput(f"unknown export {which!r}", {"which": "one of " + ", ".join(EXPORTS)})
    _check_campaign(env, actor, campaign)
    return reports_api.export_recipients(env.deps, actor.account, campaign, which)


def safe_csv(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], *, rows_per_chunk: int = 500
) -> Iterator[str]:
    """``rows`` as CSV text with a header, a few hundred rows a chunk (any campaign size).
    Every cell that a spreadsheet would read as a formula (an address ``=cmd|...@x``, a
    server's reply) is neutralised: every CSV the product writes goes through here."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for n, row in enumerate(rows, 1):
        writer.writerow(csvsafe.row(row.get(c, "") for c in columns))
        if n % rows_per_chunk == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def csv_chunks(rows: Iterable[dict[str, Any]], *, rows_per_chunk: int = 500) -> Iterator[str]:
    """An ``email`` column of ``rows`` (see :func:`safe_csv`)."""
    return safe_csv(["email"], rows, rows_per_chunk=rows_per_chunk)


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """Write :func:`csv_chunks` to ``out``; returns how many recipients."""
    n = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal n
        for row in rows:
            n += 1
            yield row

    for chunk in csv_chunks(counted()):
        out.write(chunk)
    return n


def _new_list(env: Env, actor: Actor, name: str, events: list[Message]) -> dict[str, Any]:
    """A fresh list; a second resend of the same campaign gets "(2)", "(3)"..."""
    for n in range(1, 100):
        try:
            return audience_api.create_list(
                env.deps, actor.account, name if n == 1 else f"{name} ({n})", events=events
            )
        except ListConflict:
            continue
    raise Conflict(f"too many lists named {name!r}")


def _run_import(env: Env, first: ImportChunk, events: list[Message]) -> dict[str, Any]:
    """The import chain to its end, one chunk per handler run; its events are collected."""
    cmd: ImportChunk | None = first
    while cmd is not None:
        emitted = audience_handlers.import_chunk(cmd, env.deps)
        cmd = next((m for m in emitted if isinstance(m, ImportChunk)), None)
        events.extend(m for m in emitted if not isinstance(m, ImportChunk))
    return audience_api.get_import(env.deps, first.account, first.import_id)


@command(Permission.CAMPAIGNS)
def resend(
    env: Env, actor: Actor, campaign: str, *, to: str = "non-openers", subject: str | None = None
) -> Emitted[Resent]:
    """A list of the campaign's non-openers and a follow-up draft to it (same content,
    subject "Re: ..." unless given); review the draft, then send it.  Nothing is created
    when there is nobody to resend to.  The list holds addresses only."""
    if to not in RESEND_TARGETS:
        raise InvalidInput(f"cannot resend to {to!r}", {"to": "one of " + ", ".join(RESEND_TARGETS)})
    deps, account = env.deps, actor.account
    original = campaigns_api.get(deps, account, campaign)
    events: list[Message] = []
    with tempfile.TemporaryFile() as tmp:
        text = io.TextIOWrapper(tmp, encoding="utf-8", newline="")
        n = write_csv(reports_api.export_recipients(deps, account, campaign, "non-openers"), text)
        text.flush()
        if n == 0:
            raise Conflict(f"campaign {campaign} has no non-openers to resend to", {"campaign": campaign})
        tmp.seek(0)
        key = f"imports/{account}/resend/{campaign}/{secrets.token_hex(8)}.csv"
        deps.blobs.put_stream(key, tmp, content_type="text/csv")
        text.detach()
    lst = _new_list(env, actor, f"Non-openers of {original.name}", events)
    try:
        _job, first = audience_api.start_import(deps, account, lst["id"], key)
        job = _run_import(env, first, events)
    finally:
        deps.blobs.delete(key)
    prefixed = original.subject if original.subject.startswith("Re: ") else f"Re: {original.subject}"
    draft = campaigns_api.create_draft(
        deps, account, name=f"{original.name} (non-openers)"[: campaigns_api.MAX_NAME],
        subject=subject if subject is not None else prefixed,
        from_name=original.from_name, from_email=original.from_email, reply_to=original.reply_to,
        html=original.html, text=original.text, lists=[lst["id"]], attachments=original.attachments,
    )  # fmt: skip
    recipients = int(audience_api.count_by_status(deps, account, lst["id"]).get("subscribed", 0))
    counts = {k: int(job[k]) for k in ("imported", "skipped", "rejected", "suppressed")}
    return Emitted(Resent(draft.id, lst["id"], recipients, n, counts), events)
