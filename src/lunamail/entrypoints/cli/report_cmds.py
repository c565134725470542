"""``lunamail campaigns report|export|resend``: reading a campaign's outcomes and acting on them.

These commands join the ``campaigns`` sub-app; each calls one use case of
:mod:`lunamail.app.reports`.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer
from rich.table import Table

from lunamail.app import reports
from lunamail.entrypoints.cli.common import JSON_OPTION, console, errors, print_json
from lunamail.entrypoints.cli.context import ACCOUNT_OPTION, door
from lunamail.entrypoints.cli.live import follow_report, report_table


class ExportKind(StrEnum):  # reports.EXPORTS (a test checks they agree)
    OPENED = "opened"
    CLICKED = "clicked"
    NON_OPENERS = "non-openers"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"


class ResendTarget(StrEnum):  # reports.RESEND_TARGETS
    NON_OPENERS = "non-openers"


def register(app: typer.Typer) -> None:
    """Add ``report``, ``export`` and ``resend`` to the ``campaigns`` sub-app (the root gets
    nothing of its own)."""
    from lunamail.entrypoints.cli.campaigns_cmds import app as campaigns_app

    campaigns_app.command("report")(report_cmd)
    campaigns_app.command("export")(export_cmd)
    campaigns_app.command("resend")(resend_cmd)
    campaigns_app.command("recipients")(recipients_cmd)


def report_cmd(
    campaign: str,
    as_json: bool = JSON_OPTION,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep the table live until Ctrl-C, "
                                "or until the campaign is sent and nothing changed for 10 s."),
    max_seconds: float | None = typer.Option(None, "--max-seconds", hidden=True),
    account: str | None = ACCOUNT_OPTION,
) -> None:
    """Counters and rates of a campaign (sends, deliveries, bounces, opens, clicks...)."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        doc = reports.campaign_report(env, actor, campaign)
    if as_json:
        print_json(doc)
        return
    if not follow:
        console.print(report_table(doc))
        return
    follow_report(
        lambda: reports.campaign_report(env, actor, campaign),
        lambda: reports.report_version(env, actor, campaign),
        console=console, max_seconds=max_seconds,
    )


def export_cmd(
    campaign: str,
    which: ExportKind = typer.Option(..., "--which", help="Which recipients to export."),
    out: Path | None = typer.Option(None, "--out", dir_okay=False, help="CSV file (default: stdout)."),
    account: str | None = ACCOUNT_OPTION,
) -> None:
    """Export the recipients of one outcome as CSV (streamed: any campaign size)."""
    _system, env, actor = door(account)
    with errors(False):
        rows = reports.export(env, actor, campaign, str(which))
    if out is None:
        reports.write_csv(rows, sys.stdout)
        sys.stdout.flush()
        return
    with out.open("w", encoding="utf-8", newline="") as f:
        n = reports.write_csv(rows, f)
    console.print(f"{n} recipients written to {out}", highlight=False)


def resend_cmd(
    campaign: str,
    to: ResendTarget = typer.Option(ResendTarget.NON_OPENERS, "--to", help="Who gets the follow-up."),
    subject: str | None = typer.Option(None, "--subject", help='Subject (default: "Re: " + original).'),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Make a follow-up draft for the recipients who did not open (review it, then send it)."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        out = reports.resend(env, actor, campaign, to=str(to), subject=subject)
    if as_json:
        print_json({"campaign": out.campaign, "list": out.list, "recipients": out.recipients,
                    "exported": out.exported, "import": out.import_counts})
    else:
        console.print(f"draft [bold]{out.campaign}[/] to list {out.list} "
                      f"({out.recipients} recipients); send it with "
                      f"`lunamail campaigns send {out.campaign}`")


class LedgerStatus(StrEnum):  # ledger.STATUSES
    PLANNED = "planned"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SKIPPED = "skipped"


def recipients_cmd(
    campaign: str,
    status: LedgerStatus | None = typer.Option(None, "--status", help="Only this outcome."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="Lines per page."),
    cursor: str | None = typer.Option(None, "--cursor", help="The next page (printed after each page)."),
    csv_out: Path | None = typer.Option(None, "--csv", dir_okay=False,
                                        help="Write the whole ledger (of --status) as CSV to this file."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Each recipient's current outcome: sent (relay reply), deferred (attempts, last reply),
    failed (code, enhanced status, text, retryable), skipped (why); paginated, or all of it as CSV."""
    _system, env, actor = door(account, as_json=as_json)
    which = str(status) if status is not None else None
    if csv_out is not None:
        with errors(as_json):
            lines = reports.recipients_csv(env, actor, campaign, status=which)
        n = 0
        with csv_out.open("w", encoding="utf-8", newline="") as f:
            for chunk in lines:
                f.write(chunk)
                n += chunk.count("\n")
        if as_json:
            print_json({"file": str(csv_out), "recipients": max(0, n - 1)})
        else:
            console.print(f"{max(0, n - 1)} recipients written to {csv_out}", highlight=False)
        return
    with errors(as_json):
        found = reports.recipients(env, actor, campaign, status=which, limit=limit, cursor=cursor)
    if as_json:
        print_json({"items": found.items, "next_cursor": found.next_cursor})
        return
    table = Table("email", "status", "code", "enhanced", "reply")
    for row in found.items:
        table.add_row(row["email"], row["status"], str(row.get("code", "")), row.get("enhanced", ""),
                      str(row.get("reply", row.get("reason", "")))[:80])
    console.print(table)
    if found.next_cursor:
        console.print(f"more: --cursor {found.next_cursor}", highlight=False)
