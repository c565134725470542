"""Sending domains: ``lunamail domains add/check/ls/show``."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from lunamail.app import domains
from lunamail.domain.sending_domains import SendingDomain
from lunamail.entrypoints.cli.common import JSON_OPTION, console, errors, print_json
from lunamail.entrypoints.cli.context import ACCOUNT_OPTION, door

app = typer.Typer(help="Sending domains: DKIM keys and the DNS records receivers check.", no_args_is_help=True)

_DOMAIN = typer.Argument(..., help="The domain mail is sent From, e.g. example.com.")
_STATUS = {"ok": "[green]ok[/]", "missing": "[red]missing[/]", "wrong": "[red]wrong[/]",
           "unknown": "[yellow]no answer[/]", "pending": "not checked"}
_STATE = {"verified": "[green]verified[/]", "failing": "[red]failing[/]", "pending": "[yellow]pending[/]"}


def _records(d: SendingDomain, *, statuses: bool) -> None:
    """The records to publish, as a table and as zone-file lines (to paste)."""
    table = Table("record", "type", "name", "value", *(("status",) if statuses else ()),
                  title=f"DNS records for {d.domain}", show_lines=True)
    for r in d.records:
        shown = _STATUS.get(r.status, r.status) + (f"\n{escape(r.found)}" if r.found else "")
        table.add_row(r.purpose, r.type, r.name, escape(r.value), *((shown,) if statuses else ()))
    console.print(table)
    console.print("As zone-file lines (long TXT values are split into quoted strings of at most 255):")
    for r in d.records:
        console.print(escape(r.zone_line()), soft_wrap=True, highlight=False)


@app.command("add")
def add(
    domain: str = _DOMAIN,
    ed25519: bool = typer.Option(False, "--ed25519", help="Also sign with an ed25519 key (a second signature)."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a sending domain: make its DKIM key(s) and print the DNS records to publish."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        d = domains.add(env, actor, domain, ed25519=ed25519)
    if as_json:
        print_json(d.to_dict())
        return
    verb = "Added" if d.created else "Already there:"
    console.print(f"{verb} sending domain [bold]{d.domain}[/] for account {actor.account} "
                  f"(DKIM selectors {', '.join(k.selector for k in d.keys)}).")
    _records(d, statuses=False)
    console.print(f"Publish them, then run [bold]lunamail domains check {d.domain}[/].")


@app.command("check")
def check(domain: str = _DOMAIN, account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Look the domain's records up in DNS and say which are there; exit 1 unless verified."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        d = domains.check(env, actor, domain)
    _print_state(d, as_json)
    if d.state != "verified":
        raise typer.Exit(1)


@app.command("show")
def show(domain: str = _DOMAIN, account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """A domain's state and its records (as the last check found them)."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        d = domains.get(env, actor, domain)
    _print_state(d, as_json)


def _print_state(d: SendingDomain, as_json: bool) -> None:
    if as_json:
        print_json(d.to_dict())
        return
    console.print(f"{d.domain}: {_STATE.get(d.state, d.state)}")
    _records(d, statuses=True)


@app.command("ls")
def ls(
    limit: int = typer.Option(50, "--limit", min=1, max=100),
    cursor: str | None = typer.Option(None, "--cursor", help="Continue after a previous page."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """The account's sending domains: state, and which records the last check missed."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        page = domains.list_domains(env, actor, limit=limit, cursor=cursor)
    if as_json:
        print_json({"items": [d.to_dict() for d in page.items], "next_cursor": page.next_cursor})
        return
    table = Table("domain", "state", "DKIM", "records not found", title=f"sending domains of {actor.account}")
    for d in page.items:
        failing = ", ".join(f"{r.purpose} ({r.status})" for r in d.failing_records)
        unchecked = "not checked yet" if d.checked_at is None else ""
        table.add_row(d.domain, _STATE.get(d.state, d.state),
                      ", ".join(f"{k.selector} ({k.algorithm})" for k in d.keys), failing or unchecked)
    console.print(table)
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


def register(root: typer.Typer) -> None:
    """Add ``lunamail domains ...`` to the root app."""
    root.add_typer(app, name="domains")
