"""CLI for the audience: lists, subscribers, suppression and CSV import.

Thin: parse options, call ``services.audience.api`` / the import chunk handler,
print a table or one JSON document.  Service errors become one clear message.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from lunamail.domain.audience import (
    STATUSES,
    FieldDef,
    FieldType,
    ImportChunk,
    ImportMode,
    PurgeList,
)
from lunamail.entrypoints.cli.common import JSON_OPTION, console, fail, print_json
from lunamail.entrypoints.cli.context import ACCOUNT_OPTION, current_account, get_app
from lunamail.ports.deps import Deps
from lunamail.services.audience import api, handlers
from lunamail.services.audience.errors import AudienceError, Conflict, InvalidInput, NotFound


def _deps(as_json: bool) -> Deps:
    return get_app(as_json=as_json).deps


@contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    """Service errors -> one message and a distinct exit code (2 not found, 3 conflict)."""
    try:
        yield
    except NotFound as e:
        fail(str(e), code=2, as_json=as_json)
    except Conflict as e:
        fail(str(e), code=3, as_json=as_json)
    except InvalidInput as e:
        fail(str(e), code=1, as_json=as_json, details=e.fields or None)
    except AudienceError as e:
        fail(str(e), as_json=as_json)


def _parse_field(spec: str) -> FieldDef:
    name, _, typ = spec.partition(":")
    try:
        return FieldDef(name.strip(), FieldType((typ or "text").strip()))
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
    with _errors(as_json):
        fields = [_parse_field(f) for f in field]
        lst = api.create_list(
            _deps(as_json), current_account(account), name,
            description=description, fields=fields, double_opt_in=double_opt_in,
        )  # fmt: skip
    if as_json:
        print_json(lst)
    else:
        console.print(f"Created list [bold]{lst['name']}[/] (id {lst['id']})")


@lists_app.command("ls")
def lists_ls(account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Lists with their subscriber counts by status."""
    with _errors(as_json):
        lists = api.list_lists(_deps(as_json), current_account(account))
    if as_json:
        print_json(lists)
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
    with _errors(as_json):
        lst = api.get_list(_deps(as_json), current_account(account), ref)
    if as_json:
        print_json(lst)
    else:
        console.print(lst)


@lists_app.command("rm")
def lists_rm(
    ref: str = typer.Argument(..., help="List name or id."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete a list and all its subscribers."""
    with _errors(as_json):
        deps = _deps(as_json)
        lst = api.get_list(deps, current_account(account), ref)
        pending = api.delete_list(deps, current_account(account), ref)
        while pending:  # run the purge chain here: one page per call
            msg = pending.pop()
            if isinstance(msg, PurgeList):
                pending.extend(handlers.purge_list(msg, deps))
    if as_json:
        print_json({"deleted": lst["id"], "name": lst["name"]})
    else:
        console.print(f"Deleted list [bold]{lst['name']}[/]")


# ---------------------------------------------------------------- import


def _upload(deps: Deps, account: str, path: Path) -> str:
    """Stream the local file into Blobs (never read whole) and return its key."""
    key = f"imports/{account}/uploads/{secrets.token_hex(8)}/{path.name}"
    with path.open("rb") as f:
        deps.blobs.put_stream(key, f, content_type="text/csv")
    return key


def run_import_chain(deps: Deps, first: ImportChunk, on_chunk: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Run the chunk handler chain in this process (each call = one chunk) and return the
    final job view.  The same handler runs on the queue when an import is started by HTTP."""
    cmd: ImportChunk | None = first
    while cmd is not None:
        out = handlers.import_chunk(cmd, deps)
        cmd = next((m for m in out if isinstance(m, ImportChunk)), None)
        on_chunk(api.get_import(deps, first.account, first.import_id))
        if not out:
            break
    return api.get_import(deps, first.account, first.import_id)


def import_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="CSV file."),
    list_ref: str = typer.Option(..., "--list", help="List name or id."),
    mode: ImportMode = typer.Option(ImportMode.SUBSCRIBE, "--mode", help="What to do with existing subscribers."),
    mapping: list[str] = typer.Option([], "--map", help='Column mapping COLUMN=FIELD, e.g. "E-Mail=email", "Town=city", "Notes=-" to skip.'),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Import subscribers from a CSV file (streamed: any size)."""
    acct = current_account(account)
    with _errors(as_json):
        deps = _deps(as_json)
        maps = _parse_pairs(mapping, "--map")
        key = _upload(deps, acct, file)
        job, first = api.start_import(deps, acct, list_ref, key, mode=mode.value, mapping=maps)
        started = time.monotonic()
        if as_json:
            final = run_import_chain(deps, first, lambda _job: None)
        else:
            console.print(f"Columns: {', '.join(f'{k} → {v}' for k, v in job['columns'].items())}")
            with Progress(
                TextColumn("[bold]importing"), BarColumn(), TaskProgressColumn(),
                TextColumn("{task.fields[rows]:,} rows  {task.fields[rate]:,.0f} rows/s"),
                TimeRemainingColumn(), console=console,
            ) as bar:  # fmt: skip
                task = bar.add_task("import", total=job["bytes_total"], rows=0, rate=0.0)

                def tick(j: dict[str, Any]) -> None:
                    rate = j["rows"] / max(time.monotonic() - started, 1e-6)
                    bar.update(task, completed=j["bytes_done"], rows=j["rows"], rate=rate)

                final = run_import_chain(deps, first, tick)
    summary = {**final, "seconds": round(time.monotonic() - started, 3)}
    if as_json:
        print_json(summary)
        return
    table = Table("imported", "updated", "skipped", "rejected", "duplicates", "suppressed", "role")
    table.add_row(*(f"{summary[k]:,}" for k in ("imported", "updated", "skipped", "rejected", "duplicates", "suppressed", "role")))
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
    with _errors(as_json):
        deps, acct = _deps(as_json), current_account(account)
        next_cursor: str | None = None
        if prefix:
            rows = api.search_subscribers(deps, acct, list_ref, prefix, limit=limit)
            rows = [r for r in rows if status is None or r["status"] == status]
        else:
            rows, next_cursor = api.list_subscribers(deps, acct, list_ref, status=status, limit=limit, cursor=cursor)
    if as_json:
        print_json({"subscribers": rows, "cursor": next_cursor})
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
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Subscribe an address (unconfirmed on a double opt-in list)."""
    with _errors(as_json):
        sub = api.subscribe(
            _deps(as_json), current_account(account), list_ref, email,
            name=name, fields=_parse_pairs(field, "--field") or None, source="cli",
        )  # fmt: skip
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
    with _errors(as_json):
        sub = api.get_subscriber(_deps(as_json), current_account(account), list_ref, email)
    if as_json:
        print_json(sub)
    else:
        console.print(sub)


@subs_app.command("unsubscribe")
def subs_unsubscribe(
    email: str = typer.Argument(...),
    list_ref: str = LIST_OPTION,
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Mark an address unsubscribed (kept, so it is never re-added by an import)."""
    with _errors(as_json):
        sub = api.unsubscribe(_deps(as_json), current_account(account), list_ref, email, source="cli")
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
    with _errors(as_json):
        api.delete_subscriber(_deps(as_json), current_account(account), list_ref, email)
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
    with _errors(as_json):
        item = api.suppress(_deps(as_json), current_account(account), email, reason=reason)
    if as_json:
        print_json(item)
    else:
        console.print(f"Suppressed {item['email']} ({item['reason']})")


@sup_app.command("ls")
def sup_ls(
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    cursor: str | None = typer.Option(None, "--cursor"),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Suppressed addresses (one page)."""
    with _errors(as_json):
        rows, nxt = api.list_suppressions(_deps(as_json), current_account(account), limit=limit, cursor=cursor)
    if as_json:
        print_json({"suppressions": rows, "cursor": nxt})
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
    with _errors(as_json):
        api.unsuppress(_deps(as_json), current_account(account), email)
    if as_json:
        print_json({"unsuppressed": email})
    else:
        console.print(f"Unsuppressed {email}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(lists_app, name="lists")
    app.add_typer(subs_app, name="subscribers")
    app.add_typer(sup_app, name="suppression")
    app.command("import")(import_cmd)
