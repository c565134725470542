"""CLI for the audience: lists, subscribers, suppression and CSV import.

Thin: parse options, call one use case of :mod:`lunamail.app.audience`, print a table
or one JSON document.  Errors become one clear message (see ``common.errors``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from lunamail.app import accounts, audience
from lunamail.app.errors import InvalidInput
from lunamail.domain.audience import STATUSES, FieldType, ImportMode
from lunamail.entrypoints.cli.common import JSON_OPTION, console, errors, fail, print_json
from lunamail.entrypoints.cli.context import ACCOUNT_OPTION, door, operator
from lunamail.runtime.presence import workers_running

IMPORT_TIMEOUT_SECONDS = 24 * 3600.0


def _parse_field(spec: str) -> dict[str, str]:
    name, _, typ = spec.partition(":")
    try:
        return {"name": name.strip(), "type": FieldType((typ or "text").strip()).value}
    except ValueError as e:
        raise InvalidInput(f"--field {spec!r}: type must be text, number, bool or date", {"field": spec}) from e


def _parse_pairs(pairs: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{option} {p!r}: expected NAME=VALUE", {option: p})
        out[key.strip()] = value.strip()
    return out


# ---------------------------------------------------------------- lists

lists_app = typer.Typer(help="Mailing lists.", no_args_is_help=True)


@lists_app.command("create")
def lists_create(
    name: str = typer.Argument(..., help="List name (unique in the account)."),
    description: str = typer.Option("", "--description", help="Free text."),
    double_opt_in: bool = typer.Option(False, "--double-opt-in", help="New subscribers must confirm."),
    field: list[str] = typer.Option([], "--field", help="Custom field NAME:TYPE (text, number, bool, date)."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a list."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        fields = [_parse_field(f) for f in field]
        lst = audience.create_list(env, actor, audience.NewList(name, description, fields, double_opt_in))
    if as_json:
        print_json(lst)
    else:
        console.print(f"Created list [bold]{lst['name']}[/] (id {lst['id']})")


@lists_app.command("ls")
def lists_ls(account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Lists with their subscriber counts by status."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        lists = audience.list_lists(env, actor)
    if as_json:
        print_json({"items": lists, "next_cursor": None})
        return
    table = Table("id", "name", *STATUSES, "double opt-in")
    for lst in lists:
        table.add_row(lst["id"], lst["name"], *(str(lst["counts"][s]) for s in STATUSES), "yes" if lst["double_opt_in"] else "")
    console.print(table)


@lists_app.command("show")
def lists_show(
    ref: str = typer.Argument(..., help="List name or id."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One list with its fields and counts."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        lst = audience.get_list(env, actor, ref)
    if as_json:
        print_json(lst)
        return
    console.print(f"[bold]{lst['name']}[/] (id {lst['id']})", highlight=False)
    if lst["description"]:
        console.print(lst["description"], markup=False, highlight=False)
    fields = ", ".join(f"{f['name']}:{f['type']}" for f in lst["fields"]) or "none"
    console.print(f"fields: {fields}", markup=False, highlight=False)
    console.print("double opt-in: " + ("yes" if lst["double_opt_in"] else "no"), highlight=False)
    console.print("  ".join(f"{s}: {lst['counts'][s]}" for s in STATUSES), highlight=False)


@lists_app.command("update")
def lists_update(
    ref: str = typer.Argument(..., help="List name or id."),
    name: str | None = typer.Option(None, "--name", help="New name."),
    description: str | None = typer.Option(None, "--description"),
    double_opt_in: bool | None = typer.Option(None, "--double-opt-in/--single-opt-in"),
    field: list[str] | None = typer.Option(None, "--field", help="Replace the custom fields: NAME:TYPE (repeatable)."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Change a list's name, description, custom fields or opt-in; only the options given change."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        fields = None if not field else [_parse_field(f) for f in field]
        lst = audience.update_list(env, actor, ref, audience.ListChanges(name, description, fields, double_opt_in))
    if as_json:
        print_json(lst)
    else:
        console.print(f"Updated list [bold]{escape(lst['name'])}[/] (id {lst['id']})")


@lists_app.command("rm")
def lists_rm(
    ref: str = typer.Argument(..., help="List name or id."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete a list and all its subscribers."""
    system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        lst = audience.delete_list(env, actor, ref)
    if not workers_running(system.settings):  # purge the subscribers here: one page per handler run
        system.runtime().run_until_idle(timeout=IMPORT_TIMEOUT_SECONDS)
    if as_json:
        print_json({"deleted": lst["id"], "name": lst["name"]})
    else:
        console.print(f"Deleted list [bold]{lst['name']}[/]")


# ---------------------------------------------------------------- import


def import_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="CSV file."),
    list_ref: str = typer.Option(..., "--list", help="List name or id."),
    mode: ImportMode = typer.Option(ImportMode.SUBSCRIBE, "--mode", help="What to do with existing subscribers."),
    mapping: list[str] = typer.Option([], "--map", help='Column mapping COLUMN=FIELD, e.g. "E-Mail=email", "Town=city", "Notes=-" to skip.'),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Import subscribers from a CSV file (streamed: any size)."""
    system, env, actor = door(account, as_json=as_json)
    size, limit = file.stat().st_size, system.settings.max_upload_bytes
    if size > limit:  # refused before a byte is copied into the data folder
        fail(f"{file} is {size:,} bytes; imports are limited to {limit:,} (setting max_upload_bytes)",
             as_json=as_json, code="payload_too_large", details={"bytes": size, "limit": limit})
    with errors(as_json):
        maps = _parse_pairs(mapping, "--map")
        started = time.monotonic()
        with file.open("rb") as data:
            job = audience.import_file(env, actor, list_ref, data, mode=mode.value, mapping=maps)
        state = {"job": job}

        def done() -> bool:
            state["job"] = audience.get_import(env, actor, job["id"])
            return bool(state["job"]["status"] != "running")

        def wait(tick: Any) -> None:  # the workers run the chunk chain; here when none runs
            if workers_running(system.settings):
                while not done():
                    tick()
                    time.sleep(0.2)
            else:
                system.run_until(done, timeout=IMPORT_TIMEOUT_SECONDS, on_tick=tick)
            done()

        if as_json:
            wait(lambda: None)
        else:
            console.print(f"Columns: {', '.join(f'{k} → {v}' for k, v in job['columns'].items())}")
            with Progress(
                TextColumn("[bold]importing"), BarColumn(), TaskProgressColumn(),
                TextColumn("{task.fields[rows]:,} rows  {task.fields[rate]:,.0f} rows/s"),
                TimeRemainingColumn(), console=console,
            ) as bar:  # fmt: skip
                task = bar.add_task("import", total=job["bytes_total"], rows=0, rate=0.0)

                def tick() -> None:
                    j = state["job"]
                    rate = j.get("rows", 0) / max(time.monotonic() - started, 1e-6)
                    bar.update(task, completed=j.get("bytes_done", 0), rows=j.get("rows", 0), rate=rate)

                wait(tick)
                tick()
    summary = {**state["job"], "duration_seconds": round(time.monotonic() - started, 3)}
    if as_json:
        print_json(summary)
        return
    table = Table("imported", "updated", "skipped", "rejected", "duplicates", "suppressed", "opted out", "role")
    table.add_row(*(f"{summary[k]:,}" for k in ("imported", "updated", "skipped", "rejected", "duplicates",
                                                 "suppressed", "opted_out", "role")))  # fmt: skip
    console.print(table)
    if summary["error_report"]:
        console.print(f"Rejected rows are listed in [bold]{summary['error_report']}[/]")


# ---------------------------------------------------------------- subscribers

subs_app = typer.Typer(help="Subscribers of a list.", no_args_is_help=True)
LIST_OPTION = typer.Option(..., "--list", help="List name or id.")


def _show_subscribers(rows: list[dict[str, Any]]) -> None:
    table = Table("email", "name", "status", "fields")
    for s in rows:
        table.add_row(s["email"], s["name"], s["status"], ", ".join(f"{k}={v}" for k, v in s["fields"].items()))
    console.print(table)


@subs_app.command("ls")
def subs_ls(
    list_ref: str = LIST_OPTION,
    status: str | None = typer.Option(None, "--status", help="Only this status."),
    prefix: str | None = typer.Option(None, "--search", help="Only addresses starting with this."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    cursor: str | None = typer.Option(None, "--cursor", help="Continue after a previous page."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List subscribers (one page; pass --cursor to continue)."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        got = audience.list_subscribers(env, actor, list_ref, status=status, prefix=prefix, limit=limit, cursor=cursor)
    rows, next_cursor = got.items, got.next_cursor
    if as_json:
        print_json({"items": rows, "next_cursor": next_cursor})
        return
    _show_subscribers(rows)
    if next_cursor:
        console.print(f"more: --cursor {next_cursor}")


@subs_app.command("add")
def subs_add(
    email: str = typer.Argument(...),
    list_ref: str = LIST_OPTION,
    name: str | None = typer.Option(None, "--name"),
    field: list[str] = typer.Option([], "--field", help="Custom field NAME=VALUE."),
    resubscribe: bool = typer.Option(
        False, "--resubscribe", help="Add someone who unsubscribed (from this list or all lists) again."
    ),
    reason: str = typer.Option("", "--reason", help="Why they may be mailed again (required with --resubscribe)."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Subscribe an address (unconfirmed on a double opt-in list).  Someone who unsubscribed
    is refused (opted_out) unless --resubscribe --reason "..." says they asked again."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        new = audience.NewSubscriber(email, name, _parse_pairs(field, "--field"), source="cli",
                                     resubscribe=resubscribe, reason=reason)  # fmt: skip
        sub = audience.subscribe(env, actor, list_ref, new)
    if as_json:
        print_json(sub)
    else:
        console.print(f"{sub['email']}: {sub['status']}")


@subs_app.command("show")
def subs_show(
    email: str = typer.Argument(...),
    list_ref: str = LIST_OPTION,
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One subscriber."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        sub = audience.get_subscriber(env, actor, list_ref, email)
    if as_json:
        print_json(sub)
    else:
        _show_subscribers([sub])


@subs_app.command("history")
def subs_history(
    email: str = typer.Argument(..., help="The address (any letter case)."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Why this person is (or is not) mailed: their status on every list, suppression,
    opt-out and every consent change with its door and detail."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        found = audience.subscriber_history(env, actor, email)
    if as_json:
        print_json(found)
        return
    console.print(f"[bold]{escape(found['email'])}[/]", highlight=False)
    for lst in found["lists"]:
        console.print(f"  {escape(lst['list_name'] or lst['list'])}: {lst['status']}", highlight=False)
    if not found["lists"]:
        console.print("  on no list", highlight=False)
    if found["suppressed"]:
        console.print(f"  suppressed: {escape(found['suppressed']['reason'])}", highlight=False)
    if found["opted_out"]:
        console.print(f"  opted out of all lists ({escape(found['opted_out']['door'])})", highlight=False)
    table = Table("when", "event", "list", "door", "detail")
    for e in found["events"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e["at"]))
        table.add_row(when, e["event"], e["list_name"] or e["list"], e["door"], e["detail"])
    console.print(table)


@subs_app.command("update")
def subs_update(
    email: str = typer.Argument(...),
    list_ref: str = LIST_OPTION,
    name: str | None = typer.Option(None, "--name"),
    field: list[str] = typer.Option([], "--field", help="Custom field NAME=VALUE (repeatable)."),
    replace_fields: bool = typer.Option(False, "--replace-fields", help="Drop the fields not given."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Change a subscriber's name or custom fields."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        fields = _parse_pairs(field, "--field") or None
        sub = audience.update_subscriber(env, actor, list_ref, email, name=name, fields=fields,
                                         replace_fields=replace_fields)
    if as_json:
        print_json(sub)
    else:
        _show_subscribers([sub])


@subs_app.command("unsubscribe")
def subs_unsubscribe(
    email: str = typer.Argument(...),
    list_ref: str = LIST_OPTION,
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Mark an address unsubscribed (kept, so it is never re-added by an import)."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        sub = audience.unsubscribe(env, actor, list_ref, email, source="cli")
    if as_json:
        print_json(sub)
    else:
        console.print(f"{sub['email']}: {sub['status']}")


@subs_app.command("rm")
def subs_rm(
    email: str = typer.Argument(...),
    list_ref: str = LIST_OPTION,
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete a subscriber from a list (prefer unsubscribe: it remembers the no)."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        audience.remove_subscriber(env, actor, list_ref, email)
    if as_json:
        print_json({"deleted": email})
    else:
        console.print(f"Deleted {email}")


# ---------------------------------------------------------------- suppression

sup_app = typer.Typer(help="Account-wide suppression list: never mailed, whatever the list.", no_args_is_help=True)


@sup_app.command("add")
def sup_add(
    email: str = typer.Argument(...),
    reason: str = typer.Option("manual", "--reason"),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Suppress an address."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        item = audience.suppress(env, actor, email, reason=reason, door="cli")
    if as_json:
        print_json(item)
    else:
        console.print(f"Suppressed {item['email']} ({item['reason']})")


@sup_app.command("ls")
def sup_ls(
    prefix: str = typer.Option("", "--search", help="Only addresses starting with this."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    cursor: str | None = typer.Option(None, "--cursor"),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Suppressed addresses (one page)."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        got = audience.list_suppressions(env, actor, prefix=prefix, limit=limit, cursor=cursor)
    rows, nxt = got.items, got.next_cursor
    if as_json:
        print_json({"items": rows, "next_cursor": nxt})
        return
    table = Table("email", "reason")
    for r in rows:
        table.add_row(r["email"], r["reason"])
    console.print(table)
    if nxt:
        console.print(f"more: --cursor {nxt}")


@sup_app.command("rm")
def sup_rm(
    email: str = typer.Argument(...),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Remove an address from the suppression list."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        audience.unsuppress(env, actor, email, door="cli")
    if as_json:
        print_json({"unsuppressed": email})
    else:
        console.print(f"Unsuppressed {email}")


def migrate_cmd(
    account: str | None = typer.Option(None, "--account", help="Only this account (default: every account)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Upgrade the data folder to one identity per mailbox: re-key subscribers and
    suppressions by their case-folded address and merge case duplicates (the strictest
    status wins; the first spelling stays).  Safe to run again; run it while no campaign
    is sending."""
    if account:
        _system, env, actor = door(account, as_json=as_json)
        actors = [actor]
    else:
        _system, env, op = operator(as_json=as_json)
        actors, cursor = [], None
        with errors(as_json):
            while True:
                page = accounts.list_accounts(env, op, cursor=cursor)
                actors += [replace(op, account=a.id) for a in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
    with errors(as_json):
        done = [audience.merge_case_duplicates(env, a) for a in actors]
    if as_json:
        print_json({"items": done, "next_cursor": None})
        return
    for rep in done:
        console.print(f"account {escape(rep['account'])}: {rep['lists']} lists, "
                      f"{rep['mailboxes_merged']} mailboxes merged, {rep['rekeyed']} items re-keyed",
                      highlight=False)  # fmt: skip
        for m in rep["merges"]:
            where = f"list {m['list']}" if m["list"] else "suppression list"
            console.print(f"  {where}: {escape(', '.join(m['merged']))} -> {escape(m['kept'])} ({m['status']})",
                          highlight=False)  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("migrate")(migrate_cmd)
    app.add_typer(lists_app, name="lists")
    app.add_typer(subs_app, name="subscribers")
    app.add_typer(sup_app, name="suppression")
    app.command("import")(import_cmd)
