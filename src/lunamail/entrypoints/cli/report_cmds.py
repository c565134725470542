"""``lunamail campaigns report|export|resend``: reading a campaign's outcomes and acting on them.

These commands join the ``campaigns`` sub-app.  ``resend`` composes three services
(reports for who did not open, audience for the new list and its import, campaigns
for the follow-up draft); only an entrypoint may do that, services never call each other.
"""

from __future__ import annotations

import csv
import io
import secrets
import sys
import tempfile
import time
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import typer

from lunamail.entrypoints.cli.common import JSON_OPTION, console, fail, print_json
from lunamail.entrypoints.cli.context import ACCOUNT_OPTION, current_account, get_app
from lunamail.entrypoints.cli.live import follow_report, report_table
from lunamail.runtime.bootstrap import System
from lunamail.runtime.presence import workers_running
from lunamail.services.audience import api as audience
from lunamail.services.audience import handlers as audience_handlers
from lunamail.services.audience.errors import AudienceError, Conflict
from lunamail.services.campaigns import api as campaigns
from lunamail.services.campaigns.errors import CampaignError
from lunamail.services.reports import api as reports
from lunamail.services.reports.keys import UNMAPPED

IMPORT_TIMEOUT = 600.0


class ExportKind(StrEnum):
    OPENED = "opened"
    CLICKED = "clicked"
    NON_OPENERS = "non-openers"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"


class ResendTarget(StrEnum):
    NON_OPENERS = "non-openers"


class ResendError(Exception):
    """A resend that cannot be done (nothing to send to, unknown campaign...)."""


def register(app: typer.Typer) -> None:
    """Add ``report``, ``export`` and ``resend`` to the ``campaigns`` sub-app (the root gets
    nothing of its own)."""
    from lunamail.entrypoints.cli.campaigns_cmds import app as campaigns_app

    campaigns_app.command("report")(report_cmd)
    campaigns_app.command("export")(export_cmd)
    campaigns_app.command("resend")(resend_cmd)


def _check_campaign(system: System, account: str, campaign: str, as_json: bool) -> None:
    """Refuse unknown ids (a typo would otherwise show an empty report); the account's
    unmapped feedback has a report but no campaign."""
    if campaign == UNMAPPED:
        return
    try:
        campaigns.get(system.deps, account, campaign)
    except CampaignError as e:
        fail(str(e), as_json=as_json)


def report_cmd(
    campaign: str,
    as_json: bool = JSON_OPTION,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep the table live until Ctrl-C, "
                                "or until the campaign is sent and nothing changed for 10 s."),
    max_seconds: float | None = typer.Option(None, "--max-seconds", hidden=True),
    account: str | None = ACCOUNT_OPTION,
) -> None:
    """Counters and rates of a campaign (sends, deliveries, bounces, opens, clicks...)."""
    system, acct = get_app(as_json=as_json), current_account(account)
    _check_campaign(system, acct, campaign, as_json)
    if as_json:
        print_json(reports.campaign_report(system.deps, acct, campaign))
        return
    if not follow:
        console.print(report_table(reports.campaign_report(system.deps, acct, campaign)))
        return
    follow_report(
        lambda: reports.campaign_report(system.deps, acct, campaign),
        lambda: reports.report_version(system.deps, acct, campaign),
        console=console, max_seconds=max_seconds,
    )


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """Write an ``email`` column, one row per recipient; returns how many."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email"])
    n = 0
    for row in rows:
        writer.writerow([row["email"]])
        n += 1
    return n


def export_cmd(
    campaign: str,
    which: ExportKind = typer.Option(..., "--which", help="Which recipients to export."),
    out: Path | None = typer.Option(None, "--out", dir_okay=False, help="CSV file (default: stdout)."),
    account: str | None = ACCOUNT_OPTION,
) -> None:
    """Export the recipients of one outcome as CSV (streamed: any campaign size)."""
    system, acct = get_app(), current_account(account)
    _check_campaign(system, acct, campaign, False)
    rows = reports.export_recipients(system.deps, acct, campaign, which.value)
    if out is None:
        write_csv(rows, sys.stdout)
        sys.stdout.flush()
        return
    with out.open("w", encoding="utf-8", newline="") as f:
        n = write_csv(rows, f)
    console.print(f"{n} recipients written to {out}", highlight=False)


# ---------------------------------------------------------------- resend


def _new_list(system: System, account: str, name: str) -> dict[str, Any]:
    """A fresh list; a second resend of the same campaign gets "(2)", "(3)"..."""
    for n in range(1, 100):
        try:
            return audience.create_list(system.deps, account, name if n == 1 else f"{name} ({n})")
        except Conflict:
            continue
    raise ResendError(f"too many lists named {name!r}")


def _run_import(system: System, first: Any) -> dict[str, Any]:
    """Run the import chain to its end: through the queue when the chunk handler is routed
    (by the running workers, else in this process), else by calling the handler here."""
    deps, account, import_id = system.deps, first.account, first.import_id

    def finished() -> bool:
        return bool(audience.get_import(deps, account, import_id)["status"] != "running")

    if system.router.handlers_for(first):
        system.bus.publish([first])
        if workers_running(system.settings):
            deadline = time.monotonic() + IMPORT_TIMEOUT
            while not finished() and time.monotonic() < deadline:
                time.sleep(0.2)
        else:
            system.run_until(finished, timeout=IMPORT_TIMEOUT)
    else:
        cmd: Any = first
        while cmd is not None:
            emitted = audience_handlers.import_chunk(cmd, deps)
            cmd = next((m for m in emitted if type(m) is type(first)), None)
    job = audience.get_import(deps, account, import_id)
    if job["status"] == "running":
        raise ResendError(f"import {import_id} did not finish within {IMPORT_TIMEOUT:.0f} s")
    return job


def resend_to_non_openers(system: System, account: str, campaign: str,
                          *, subject: str | None = None) -> dict[str, Any]:
    """Create a list of the campaign's non-openers and a follow-up draft to it (same content,
    subject "Re: ..." unless given).  Nothing is created when there is nobody to resend to.
    The new list holds addresses only: names and custom fields are the audience's data."""
    deps = system.deps
    original = campaigns.get(deps, account, campaign)
    with tempfile.TemporaryFile() as tmp:
        text = io.TextIOWrapper(tmp, encoding="utf-8", newline="")
        n = write_csv(reports.export_recipients(deps, account, campaign, "non-openers"), text)
        text.flush()
        if n == 0:
            raise ResendError(f"campaign {campaign} has no non-openers to resend to")
        tmp.seek(0)
        key = f"imports/{account}/resend/{campaign}/{secrets.token_hex(8)}.csv"
        deps.blobs.put_stream(key, tmp, content_type="text/csv")
        text.detach()
    lst = _new_list(system, account, f"Non-openers of {original.name}")
    try:
        _job, first = audience.start_import(deps, account, lst["id"], key)
        job = _run_import(system, first)
    finally:
        deps.blobs.delete(key)
    prefixed = original.subject if original.subject.startswith("Re: ") else f"Re: {original.subject}"
    draft = campaigns.create_draft(
        deps, account, name=f"{original.name} (non-openers)"[: campaigns.MAX_NAME],
        subject=subject if subject is not None else prefixed,
        from_name=original.from_name, from_email=original.from_email, reply_to=original.reply_to,
        html=original.html, text=original.text, lists=[lst["id"]],
        attachments=original.attachments,
    )
    recipients = int(audience.count_by_status(deps, account, lst["id"]).get("subscribed", 0))
    return {"campaign": draft.id, "list": lst["id"], "recipients": recipients,
            "exported": n, "import": {k: job[k] for k in ("imported", "skipped", "rejected", "suppressed")}}


def resend_cmd(
    campaign: str,
    to: ResendTarget = typer.Option(ResendTarget.NON_OPENERS, "--to", help="Who gets the follow-up."),
    subject: str | None = typer.Option(None, "--subject", help='Subject (default: "Re: " + original).'),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Make a follow-up draft for the recipients who did not open (review it, then send it)."""
    system, acct = get_app(as_json=as_json), current_account(account)
    try:
        doc = resend_to_non_openers(system, acct, campaign, subject=subject)
    except (CampaignError, AudienceError, ResendError) as e:
        fail(str(e), as_json=as_json)
    if as_json:
        print_json(doc)
    else:
        console.print(f"draft [bold]{doc['campaign']}[/] to list {doc['list']} "
                      f"({doc['recipients']} recipients); send it with "
                      f"`lunamail campaigns send {doc['campaign']}`")
