"""Reputation guard commands: ``lunamail guard status`` and ``lunamail guard thresholds``."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from lunamail.app import guard
from lunamail.domain.guard import percent
from lunamail.entrypoints.cli.common import JSON_OPTION, console, errors, print_json
from lunamail.entrypoints.cli.context import ACCOUNT_OPTION, door

app = typer.Typer(help="Reputation guard: bounce and complaint rates, score, thresholds.",
                  no_args_is_help=True)


@app.command("status")
def status(
    account: str | None = ACCOUNT_OPTION,
    campaign: str | None = typer.Option(None, "--campaign", help="Also show one campaign's numbers."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The account's reputation score, its rates over the window and why."""
    _system, env, actor = door(account, as_json=as_json)
    acct = actor.account
    with errors(as_json):
        doc = guard.status(env, actor, campaign=campaign)
    camp: dict[str, Any] | None = doc.get("campaign")
    if as_json:
        print_json(doc)
        return
    state = "[bold red]locked[/]" if doc["locked"] else "active"
    console.print(f"account [bold]{acct}[/]: score [bold]{doc['score']}[/]/100, sending {state}")
    table = Table(title=f"last {doc['window_hours']} h", show_header=False)
    table.add_row("sent", str(doc["sent"]))
    table.add_row("hard bounces", f"{doc['bounces']} ({percent(doc['bounce_rate'])})")
    table.add_row("complaints", f"{doc['complaints']} ({percent(doc['complaint_rate'])})")
    table.add_row("soft bounces", str(doc["soft_bounces"]))
    table.add_row("refused at send", str(doc["failed"]))
    console.print(table)
    for r in doc["reasons"]:
        console.print(f"  {r['points']:>4}  {r['message']}")
    if camp is not None:
        flag = f" — tripped: {camp['reason']}" if camp["tripped"] else ""
        console.print(
            f"campaign [bold]{campaign}[/]: {camp['sent']} sent,"
            f" bounces {percent(camp['bounce_rate'])}, complaints {percent(camp['complaint_rate'])}{flag}"
        )


_CAMPAIGN_BOUNCE = typer.Option(None, "--campaign-bounce",
                                help="Pause a campaign above this bounce rate (0.05 = 5%).")
_CAMPAIGN_COMPLAINT = typer.Option(None, "--campaign-complaint",
                                   help="Pause a campaign above this complaint rate.")
_ACCOUNT_BOUNCE = typer.Option(None, "--account-bounce", help="Lock the account above this bounce rate.")
_ACCOUNT_COMPLAINT = typer.Option(None, "--account-complaint",
                                  help="Lock the account above this complaint rate.")
_MIN_SAMPLE = typer.Option(None, "--min-sample", help="Act only once this many messages were sent.")
_WINDOW_HOURS = typer.Option(None, "--window-hours", help="The account's rolling window, in hours.")


@app.command("thresholds")
def thresholds(
    campaign_bounce: float | None = _CAMPAIGN_BOUNCE,
    campaign_complaint: float | None = _CAMPAIGN_COMPLAINT,
    account_bounce: float | None = _ACCOUNT_BOUNCE,
    account_complaint: float | None = _ACCOUNT_COMPLAINT,
    min_sample: int | None = _MIN_SAMPLE,
    window_hours: int | None = _WINDOW_HOURS,
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the guard's thresholds; with options, change them first."""
    _system, env, actor = door(account, as_json=as_json)
    acct = actor.account
    changes = guard.ThresholdChanges(
        campaign_bounce=campaign_bounce, campaign_complaint=campaign_complaint,
        account_bounce=account_bounce, account_complaint=account_complaint,
        min_sample=min_sample, window_hours=window_hours,
    )  # fmt: skip
    with errors(as_json):
        current = guard.set_thresholds(env, actor, changes) if changes.any() else guard.thresholds(env, actor)
    doc = current.to_dict()
    if as_json:
        print_json({"account": acct, **doc})
        return
    table = Table("threshold", "value", title=f"guard thresholds of {acct}")
    for name, value in doc.items():
        shown = percent(value) if isinstance(value, float) else str(value)
        table.add_row(name.replace("_", " "), shown)
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``lunamail guard ...`` to the root app."""
    root.add_typer(app, name="guard")
