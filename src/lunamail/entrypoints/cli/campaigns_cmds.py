"""``lunamail campaigns ...``: drafts, preview, test, send (with a live progress bar), report."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from lunamail.domain.campaign_model import IllegalTransition
from lunamail.domain.messages import Later, Message
from lunamail.entrypoints.cli.common import JSON_OPTION, console, fail, print_json
from lunamail.entrypoints.cli.context import ACCOUNT_OPTION, current_account, get_app
from lunamail.entrypoints.cli.live import report_table
from lunamail.runtime.bootstrap import System
from lunamail.runtime.presence import workers_running
from lunamail.services.audience import api as audience
from lunamail.services.audience.errors import AudienceError
from lunamail.services.campaigns import api as campaigns
from lunamail.services.campaigns.errors import CampaignError, PreSendCheckFailed
from lunamail.services.reports import api as reports

app = typer.Typer(help="Compose, send and follow campaigns.", no_args_is_help=True)

FINAL = {"sent", "cancelled", "failed"}


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="campaigns")


def _guard(as_json: bool, exc: Exception) -> None:
    details: Any = None
    if isinstance(exc, PreSendCheckFailed):
        details = {"reasons": list(exc.reasons)}
    elif hasattr(exc, "fields"):
        details = {"fields": exc.fields}
    fail(str(exc), as_json=as_json, details=details)


def _list_ids(system: System, account: str, names: list[str]) -> list[str]:
    return [str(audience.get_list(system.deps, account, n)["id"]) for n in names]


def _audience_size(system: System, account: str, list_ids: list[str]) -> int:
    return sum(int(audience.count_by_status(system.deps, account, i).get("subscribed", 0)) for i in list_ids)


def _publish(system: System, msgs: list[Message | Later]) -> None:
    system.bus.publish(msgs)


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Campaign name (shown in reports and List-Id)."),
    lists: list[str] = typer.Option(..., "--list", help="Audience list name or id (repeatable)."),
    subject: str = typer.Option(..., "--subject"),
    sender: str = typer.Option(..., "--from", help='From: "Name <addr@example.com>" or an address.'),
    html: Path = typer.Option(..., "--html", exists=True, dir_okay=False, help="HTML body template."),
    text: Path | None = typer.Option(None, "--text", exists=True, dir_okay=False,
                                     help="Text body template (generated from the HTML when absent)."),
    reply_to: str = typer.Option("", "--reply-to"),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a draft campaign."""
    system, acct = get_app(as_json=as_json), current_account(account)
    from_name, from_email = parseaddr(sender)
    try:
        camp = campaigns.create_draft(
            system.deps, acct, name=name, subject=subject, from_name=from_name,
            from_email=from_email or sender, reply_to=reply_to,
            html=html.read_text("utf-8"), text=text.read_text("utf-8") if text else None,
            lists=_list_ids(system, acct, lists),
        )
    except (CampaignError, AudienceError, IllegalTransition) as e:
        _guard(as_json, e)
    doc = camp.to_dict()
    if as_json:
        print_json(doc)
    else:
        console.print(f"created campaign [bold]{doc['id']}[/] ({doc['name']}), status {doc['status']}")


@app.command("ls")
def ls(
    status: str | None = typer.Option(None, "--status"),
    limit: int = typer.Option(50, "--limit"),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List campaigns, newest first."""
    system, acct = get_app(as_json=as_json), current_account(account)
    page = campaigns.list_campaigns(system.deps, acct, status=status, limit=limit)
    rows = [c.to_dict() for c in page.items]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "status", "subject")
    for r in rows:
        table.add_row(str(r["id"]), str(r["name"]), str(r["status"]), str(r["subject"]))
    console.print(table)


@app.command("show")
def show(campaign: str, account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """One campaign's draft and status."""
    system, acct = get_app(as_json=as_json), current_account(account)
    try:
        doc = campaigns.get(system.deps, acct, campaign).to_dict()
    except (CampaignError, IllegalTransition) as e:
        _guard(as_json, e)
    if as_json:
        print_json(doc)
    else:
        for k in ("id", "name", "status", "subject", "from_email", "lists", "scheduled_at"):
            console.print(f"[bold]{k}[/]: {doc.get(k)}")


@app.command("preview")
def preview(
    campaign: str,
    email: str | None = typer.Option(None, "--email", help="Render for this subscriber's address."),
    name: str = typer.Option("", "--name"),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Render the campaign for one (or a sample) subscriber."""
    system, acct = get_app(as_json=as_json), current_account(account)
    sub = {"email": email, "name": name, "fields": {}} if email else None
    try:
        out = campaigns.preview(system.deps, acct, campaign, sub)
    except (CampaignError, IllegalTransition) as e:
        _guard(as_json, e)
    if as_json:
        print_json({"subject": out.subject, "html": out.html, "text": out.text})
    else:
        console.print(f"[bold]Subject:[/] {out.subject}\n")
        console.print(out.text, markup=False, highlight=False)


@app.command("test")
def test_send(
    campaign: str,
    to: list[str] = typer.Option(..., "--to", help="Address to receive the test (repeatable)."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send a test copy (marked as a test, not counted) and wait until it is handed over."""
    system, acct = get_app(as_json=as_json), current_account(account)
    try:
        cmd = campaigns.test_send(system.deps, acct, campaign, to)
    except (CampaignError, IllegalTransition) as e:
        _guard(as_json, e)
    _publish(system, [cmd])
    if not workers_running(system.settings):
        system.runtime().run_until_idle(timeout=120)
    if as_json:
        print_json({"campaign": campaign, "test_sent_to": list(to)})
    else:
        console.print(f"test of {campaign} sent to {', '.join(to)}")


@app.command("send")
def send(
    campaign: str,
    wait: bool = typer.Option(False, "--wait", help="Follow progress until the campaign is sent "
                              "(runs the workers in this process when none is running)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Give up waiting after N seconds."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send a campaign now."""
    system, acct = get_app(as_json=as_json), current_account(account)
    try:
        camp = campaigns.get(system.deps, acct, campaign)
        size = _audience_size(system, acct, list(camp.lists))
        started = campaigns.send_now(system.deps, acct, campaign, audience_size=size)
    except (CampaignError, AudienceError, IllegalTransition) as e:
        _guard(as_json, e)
    _publish(system, [started])
    if not wait:
        if as_json:
            print_json({"campaign": campaign, "status": "sending", "audience": size})
        else:
            console.print(f"campaign {campaign} is sending to up to {size} recipients")
        return
    report = follow(system, acct, campaign, timeout=timeout, quiet=as_json)
    if as_json:
        print_json(report)
    else:
        print_report(report)


def follow(system: System, account: str, campaign: str, *, timeout: float | None, quiet: bool) -> dict[str, Any]:
    """Show a live progress bar (sent/s, ETA) until the campaign reaches a final state.
    Runs the workers in this process when no worker serves the data folder."""
    state: dict[str, Any] = {"report": reports.campaign_report(system.deps, account, campaign)}
    start = time.monotonic()

    def done() -> bool:
        state["report"] = reports.campaign_report(system.deps, account, campaign)
        return state["report"]["status"] in FINAL

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[done]}/{task.fields[planned]}"), TextColumn("{task.fields[rate]:.0f} sent/s"),
        TimeRemainingColumn(), console=console, disable=quiet, transient=False,
    ) as bar:
        task = bar.add_task(f"sending {campaign}", total=None, rate=0.0, done=0, planned="?")

        def tick() -> None:
            r = state["report"]
            elapsed = max(1e-6, time.monotonic() - start)
            finished = r["sent"] + r["failed"]
            planned = r["planned"] if r.get("planning_done") else (f"{r['planned']}+" if r["planned"] else "?")
            bar.update(task, completed=finished, total=r["planned"] or None,
                       rate=r["sent"] / elapsed, done=finished, planned=planned)

        if workers_running(system.settings):
            deadline = None if timeout is None else time.monotonic() + timeout
            while not done() and (deadline is None or time.monotonic() < deadline):
                tick()
                time.sleep(0.2)
        else:
            system.run_until(done, timeout=timeout, on_tick=tick)
        done()
        tick()
    return dict(state["report"])


@app.command("schedule")
def schedule(
    campaign: str,
    at: str = typer.Option(..., "--at", help="When: ISO 8601 (2026-12-01T09:00:00+01:00), "
                           "or a local time with --tz."),
    tz: str | None = typer.Option(None, "--tz", help="Time zone name, e.g. Europe/Berlin."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Schedule a campaign; a worker sends it when the time comes."""
    system, acct = get_app(as_json=as_json), current_account(account)
    try:
        camp = campaigns.get(system.deps, acct, campaign)
        cmd = campaigns.schedule(system.deps, acct, campaign, at, tz=tz,
                                 audience_size=_audience_size(system, acct, list(camp.lists)))
    except (CampaignError, AudienceError, IllegalTransition) as e:
        _guard(as_json, e)
    delay = max(0.0, float(cmd.at or 0) - system.clock.now())
    _publish(system, [Later(cmd, delay)])
    doc = campaigns.get(system.deps, acct, campaign).to_dict()
    if as_json:
        print_json(doc)
    else:
        when = datetime.fromtimestamp(float(doc["scheduled_at"]), UTC).isoformat(timespec="minutes")
        console.print(f"campaign {campaign} scheduled for {when} (UTC)")


def _control(action: str, campaign: str, account: str | None, as_json: bool) -> None:
    system, acct = get_app(as_json=as_json), current_account(account)
    try:
        event = getattr(campaigns, action)(system.deps, acct, campaign)
    except (CampaignError, IllegalTransition) as e:
        _guard(as_json, e)
    _publish(system, [event])
    doc = campaigns.get(system.deps, acct, campaign).to_dict()
    if as_json:
        print_json(doc)
    else:
        console.print(f"campaign {campaign}: {doc['status']}")


@app.command("pause")
def pause(campaign: str, account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Pause sending; batches not yet started wait until resumed."""
    _control("pause", campaign, account, as_json)


@app.command("resume")
def resume(campaign: str, account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Resume a paused campaign."""
    _control("resume", campaign, account, as_json)


@app.command("cancel")
def cancel(campaign: str, account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Cancel a campaign; nothing more is sent."""
    _control("cancel", campaign, account, as_json)


def print_report(doc: dict[str, Any]) -> None:
    """The full report table (counters, engagement, rates) once."""
    console.print(report_table(doc))
