"""``lunamail campaigns ...``: drafts, preview, test, send (with a live progress bar), report."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from lunamail.app import campaigns
from lunamail.app import reports as reports_app
from lunamail.app.base import Actor, Env
from lunamail.domain.campaign_model import Campaign
from lunamail.entrypoints.cli.common import JSON_OPTION, console, errors, print_json, rfc3339
from lunamail.entrypoints.cli.context import ACCOUNT_OPTION, door, env_of
from lunamail.entrypoints.cli.live import report_table
from lunamail.runtime.bootstrap import System
from lunamail.runtime.presence import workers_running

app = typer.Typer(help="Compose, send and follow campaigns.", no_args_is_help=True)

FINAL = {"sent", "cancelled", "failed"}


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="campaigns")


def _read(path: Path | None) -> str | None:
    return None if path is None else path.read_text("utf-8")


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
    track_opens: bool | None = typer.Option(None, "--track-opens/--no-track-opens",
                                            help="Open tracking (default: the track_opens setting)."),
    track_clicks: bool | None = typer.Option(None, "--track-clicks/--no-track-clicks",
                                             help="Click tracking (default: the track_clicks setting)."),
    header: list[str] = typer.Option([], "--header", help='An extra header, "Name: value" (repeatable).'),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a draft campaign."""
    _system, env, actor = door(account, as_json=as_json)
    from_name, from_email = parseaddr(sender)
    extra = {k.strip(): v.strip() for k, _, v in (h.partition(":") for h in header)}
    draft = campaigns.NewCampaign(
        name=name, subject=subject, from_name=from_name, from_email=from_email or sender,
        reply_to=reply_to, html=html.read_text("utf-8"), text=_read(text), lists=lists,
        track_opens=track_opens, track_clicks=track_clicks, headers=extra,
    )  # fmt: skip
    with errors(as_json):
        camp = campaigns.create(env, actor, draft)
    doc = camp.to_dict()
    if as_json:
        print_json(doc)
    else:
        console.print(f"created campaign [bold]{doc['id']}[/] ({doc['name']}), status {doc['status']}")


@app.command("ls")
def ls(
    status: str | None = typer.Option(None, "--status"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    cursor: str | None = typer.Option(None, "--cursor", help="Continue after a previous page."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List campaigns, newest first."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        page = campaigns.list_campaigns(env, actor, status=status, limit=limit, cursor=cursor)
    rows = [c.to_dict() for c in page.items]
    if as_json:
        print_json({"items": rows, "next_cursor": page.next_cursor})
        return
    table = Table("id", "name", "status", "subject")
    for r in rows:
        table.add_row(str(r["id"]), str(r["name"]), str(r["status"]), str(r["subject"]))
    console.print(table)
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


@app.command("show")
def show(campaign: str, account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """One campaign's draft and status."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        doc = campaigns.get(env, actor, campaign).to_dict()
    if as_json:
        print_json(doc)
    else:
        when = doc.get("scheduled_at")
        shown = {
            "id": doc["id"], "name": doc["name"], "status": doc["status"], "subject": doc["subject"],
            "from": doc.get("from_email") or "-", "lists": ", ".join(doc.get("lists") or ()) or "-",
            "scheduled at": rfc3339(float(when)) if when else "-",
        }  # fmt: skip
        for k, v in shown.items():
            console.print(f"[bold]{k}[/]: {escape(str(v))}", highlight=False)


@app.command("preview")
def preview(
    campaign: str,
    email: str | None = typer.Option(None, "--email", help="Render for this subscriber's address."),
    name: str = typer.Option("", "--name"),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Render the campaign for one (or a sample) subscriber."""
    _system, env, actor = door(account, as_json=as_json)
    sub = {"email": email, "name": name, "fields": {}} if email else None
    with errors(as_json):
        out = campaigns.preview(env, actor, campaign, sub)
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
    """Send a test copy (marked as a test, not counted) and say what the relay answered for
    each address (exit 1 unless it accepted every one)."""
    system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        queued = campaigns.test(env, actor, campaign, to)
    if not workers_running(system.settings):
        system.runtime().run_until_idle(timeout=120)
    deadline = time.monotonic() + system.settings.smtp_timeout * 2 + 30
    with errors(as_json):
        result = campaigns.test_result(env, actor, campaign, queued.test_id)
        while result.status == "queued" and time.monotonic() < deadline:
            time.sleep(0.2)
            result = campaigns.test_result(env, actor, campaign, queued.test_id)
    if as_json:
        print_json({"campaign": campaign, "test_id": queued.test_id, "status": result.status,
                    "test_sent_to": [a.address for a in result.answers if a.outcome == "sent"],
                    "answers": [{"address": a.address, "outcome": a.outcome, "code": a.code, "reply": a.reply}
                                for a in result.answers]})
    elif result.status == "queued":
        console.print(f"[red]error:[/] the test of {campaign} was not tried yet (is a worker running?)")
    else:
        for a in result.answers:
            if a.outcome == "sent":
                console.print(f"test of {campaign} sent to {a.address} ({a.code})", highlight=False)
            else:
                console.print(f"[red]test of {campaign} NOT sent to {escape(a.address)}:[/] "
                              f"{a.code} {escape(a.reply)}", highlight=False)
    if result.status != "sent":
        raise typer.Exit(1)


@app.command("send")
def send(
    campaign: str,
    wait: bool = typer.Option(False, "--wait", help="Follow progress until the campaign is sent "
                              "(runs the workers in this process when none is running)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Give up waiting after N seconds."),
    stall_timeout: float = typer.Option(600.0, "--stall-timeout", help="With --wait: give up (exit 1) once "
                                        "the send has been stalled this many seconds (the relay refuses "
                                        "connections, times out or defers everything).", min=0.0),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send a campaign now."""
    system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        started = campaigns.send(env, actor, campaign)
    size, tracking = started.audience_size, dict(started.tracking or {})
    if not as_json:
        def onoff(key: str) -> str:
            return "on" if tracking.get(key) else "off"

        console.print(f"campaign {campaign} is sending to up to {size} recipients "
                      f"(open tracking {onoff('opens')}, click tracking {onoff('clicks')})")
        for warning in started.warnings:
            console.print(f"[yellow]warning:[/] {warning}")
    if not wait:
        if as_json:
            print_json({"campaign": campaign, "status": "sending", "audience": size, "tracking": tracking,
                        "warnings": list(started.warnings)})
        return
    report = follow(system, actor, campaign, timeout=timeout, quiet=as_json, stall_timeout=stall_timeout)
    if as_json:
        print_json(report)
    else:
        print_report(report)
    stalled = report.get("stalled")
    if report.get("status") not in FINAL and stalled:  # --stall-timeout ran out
        if as_json:
            raise typer.Exit(1)  # the report printed says stalled, why and since when
        console.print(f"[red]error:[/] the send of {campaign} is stalled since "
                      f"{rfc3339(float(stalled['since']))}: {escape(str(stalled['reason']))}; it goes on by "
                      f"itself once the relay answers (follow it with `lunamail campaigns report {campaign} -f`)")
        raise typer.Exit(1)


def follow(system: System, actor: Actor, campaign: str, *, timeout: float | None, quiet: bool,
           stall_timeout: float | None = None) -> dict[str, Any]:
    """Show a live progress bar (sent/s, ETA) until the campaign reaches a final state, or
    has been stalled for ``stall_timeout`` seconds.  Runs the workers in this process when
    no worker serves the data folder."""
    env = env_of(system)
    state: dict[str, Any] = {"report": reports_app.campaign_report(env, actor, campaign)}
    start = time.monotonic()

    def done() -> bool:
        state["report"] = r = reports_app.campaign_report(env, actor, campaign)
        stalled = r.get("stalled")
        if stalled and stall_timeout is not None and time.time() - float(stalled["since"]) >= stall_timeout:
            return True
        return r["status"] in FINAL

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
            stalled = r.get("stalled")
            bar.update(task, completed=finished, total=r["planned"] or None,
                       rate=r["sent"] / elapsed, done=finished, planned=planned,
                       description=f"stalled ({escape(str(stalled['reason'])[:60])})" if stalled
                       else f"sending {campaign}")

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
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        doc = campaigns.schedule(env, actor, campaign, at, tz=tz).campaign.to_dict()
    if as_json:
        print_json(doc)
    else:
        when = datetime.fromtimestamp(float(doc["scheduled_at"]), UTC).isoformat(timespec="minutes")
        console.print(f"campaign {campaign} scheduled for {when} (UTC)")


def _control(action: Callable[[Env, Actor, str], Campaign], campaign: str, account: str | None, as_json: bool) -> None:
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        doc = action(env, actor, campaign).to_dict()
    if as_json:
        print_json(doc)
    else:
        console.print(f"campaign {campaign}: {doc['status']}")


@app.command("pause")
def pause(campaign: str, account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Pause sending; batches not yet started wait until resumed."""
    _control(campaigns.pause, campaign, account, as_json)


@app.command("resume")
def resume(campaign: str, account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Resume a paused campaign."""
    _control(campaigns.resume, campaign, account, as_json)


@app.command("cancel")
def cancel(campaign: str, account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Cancel a campaign; nothing more is sent."""
    _control(campaigns.cancel, campaign, account, as_json)


@app.command("retry")
def retry(
    campaign: str,
    failed: bool = typer.Option(..., "--failed", help="Resend to the recipients whose last outcome is a "
                                "retryable failure (required: it names what is retried)."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send a sent (or failed) campaign again to its retryable failures only (4xx refusals,
    an unreachable relay, a dropped connection); permanent failures are never retried."""
    _system, env, actor = door(account, as_json=as_json)
    if not failed:
        raise typer.BadParameter("say --failed: only failed recipients can be retried")
    with errors(as_json):
        out = campaigns.retry_failed(env, actor, campaign)
    if as_json:
        print_json({"campaign": campaign, "status": str(out.campaign.status), "recipients": out.recipients})
    elif out.recipients == 0:
        console.print(f"campaign {campaign}: no retryable failures; nothing to resend")
    else:
        console.print(f"campaign {campaign}: sending again to {out.recipients} recipient(s) whose last "
                      f"outcome is a retryable failure")


@app.command("edit")
def edit(
    campaign: str,
    name: str | None = typer.Option(None, "--name"),
    lists: list[str] | None = typer.Option(None, "--list", help="Replace the lists (repeatable)."),
    subject: str | None = typer.Option(None, "--subject"),
    sender: str | None = typer.Option(None, "--from", help='From: "Name <addr@example.com>" or an address.'),
    html: Path | None = typer.Option(None, "--html", exists=True, dir_okay=False, help="New HTML body template."),
    text: Path | None = typer.Option(None, "--text", exists=True, dir_okay=False, help="New text body template."),
    derive_text: bool = typer.Option(False, "--derive-text", help="Drop the text part: derive it from the HTML."),
    reply_to: str | None = typer.Option(None, "--reply-to"),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Change a draft; only the options given change."""
    _system, env, actor = door(account, as_json=as_json)
    from_name = from_email = None
    if sender is not None:
        from_name, addr = parseaddr(sender)
        from_email = addr or sender
    changes = campaigns.CampaignChanges(
        name=name, subject=subject, from_name=from_name, from_email=from_email, reply_to=reply_to,
        html=_read(html), text="" if derive_text else _read(text), lists=lists or None,
    )  # fmt: skip
    with errors(as_json):
        doc = campaigns.edit(env, actor, campaign, changes).to_dict()
    if as_json:
        print_json(doc)
    else:
        console.print(f"campaign [bold]{doc['id']}[/] updated")


@app.command("rm")
def rm(campaign: str, account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Delete a draft, cancelled or failed campaign."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        campaigns.delete(env, actor, campaign)
    if as_json:
        print_json({"deleted": campaign})
    else:
        console.print(f"deleted campaign {campaign}")


def print_report(doc: dict[str, Any]) -> None:
    """The full report table (counters, engagement, rates) once."""
    console.print(report_table(doc))
