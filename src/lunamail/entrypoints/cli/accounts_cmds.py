"""Account and API key commands: ``lunamail init``, ``lunamail accounts ...``, ``lunamail keys ...``.

A key's secret is printed exactly once, when it is made; afterwards only its
prefix is ever shown, because only its hash is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from lunamail.domain.accounts import DEFAULT_ACCOUNT
from lunamail.entrypoints.cli.common import JSON_OPTION, console, err_console, fail, print_json
from lunamail.entrypoints.cli.context import ACCOUNT_OPTION, current_account, get_app
from lunamail.services.accounts import api as accounts
from lunamail.services.accounts.errors import AccountsError, Conflict


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _fail(exc: AccountsError, as_json: bool) -> None:
    fail(exc.message, as_json=as_json, details=exc.details or None)


def _show_secret(secret: str) -> None:
    console.print(f"API key: [bold]{secret}[/]")
    err_console.print("Store it now: it is shown only this once (only its hash is kept).")


def init(
    new_key: bool = typer.Option(False, "--new-key", help="Issue another key for an existing default account."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create the data folder, the "default" account and its first API key (idempotent)."""
    system = get_app(as_json=as_json)
    deps = system.deps
    created = True
    try:
        accounts.create_account(deps, "Default", account_id=DEFAULT_ACCOUNT)
    except Conflict:
        created = False
    secret: str | None = None
    if created or new_key:
        secret = accounts.create_api_key(deps, DEFAULT_ACCOUNT, "init" if created else "init --new-key").secret
    data_dir = str(system.settings.data_dir.resolve())
    if as_json:
        print_json({"account": DEFAULT_ACCOUNT, "api_key": secret, "data_dir": data_dir, "created": created})
        return
    if created:
        console.print(f"Created account [bold]{DEFAULT_ACCOUNT}[/] in {data_dir}")
    else:
        console.print(f"Account [bold]{DEFAULT_ACCOUNT}[/] already exists in {data_dir}")
    if secret:
        _show_secret(secret)
    else:
        console.print("No new key printed (use --new-key to issue one).")


# ---------------------------------------------------------------- accounts

accounts_app = typer.Typer(help="Accounts (tenants): every list and campaign belongs to one.", no_args_is_help=True)


@accounts_app.command("ls")
def accounts_ls(as_json: bool = JSON_OPTION) -> None:
    """List accounts with their sending state."""
    deps = get_app(as_json=as_json).deps
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page, cursor = accounts.list_accounts(deps, cursor=cursor)
        found.extend(a.to_dict() for a in page)
        if cursor is None:
            break
    if as_json:
        print_json({"items": found})
        return
    table = Table("id", "name", "sending", "reason", "created")
    for a in found:
        table.add_row(a["id"], a["name"], a["sending"], a["sending_reason"], _when(a["created_at"]))
    console.print(table)


@accounts_app.command("create")
def accounts_create(
    name: str = typer.Argument(..., help="Display name."),
    account_id: str | None = typer.Option(None, "--id", help="Account id (default: random)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create an account (no key yet: `lunamail keys create --account ID`)."""
    deps = get_app(as_json=as_json).deps
    try:
        acct = accounts.create_account(deps, name, account_id=account_id)
    except AccountsError as e:
        _fail(e, as_json)
        return
    if as_json:
        print_json(acct.to_dict())
    else:
        console.print(f"Created account [bold]{acct.id}[/] ({acct.name})")


@accounts_app.command("unlock")
def accounts_unlock(
    account_id: str = typer.Argument(..., help="Account id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Lift a sending lock set by the reputation guard (after fixing the cause)."""
    system = get_app(as_json=as_json)
    try:
        events = accounts.unlock_sending(system.deps, account_id)
        acct = accounts.get_account(system.deps, account_id)
    except AccountsError as e:
        _fail(e, as_json)
        return
    if events:
        system.bus.publish(events)
    if as_json:
        print_json({**acct.to_dict(), "changed": bool(events)})
    elif events:
        console.print(f"Account [bold]{account_id}[/] may send again.")
    else:
        console.print(f"Account [bold]{account_id}[/] was not locked.")


# ---------------------------------------------------------------- keys

keys_app = typer.Typer(help="API keys for the HTTP API (Authorization: Bearer <key>).", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    account: str | None = ACCOUNT_OPTION,
    label: str = typer.Option("", "--label", help="What the key is for."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Issue a key; its secret is printed this once."""
    acct = current_account(account)
    deps = get_app(as_json=as_json).deps
    try:
        issued = accounts.create_api_key(deps, acct, label)
    except AccountsError as e:
        _fail(e, as_json)
        return
    if as_json:
        print_json({**issued.key.to_dict(), "api_key": issued.secret})
    else:
        console.print(f"Key [bold]{issued.key.prefix}[/] for account {acct}")
        _show_secret(issued.secret)


@keys_app.command("ls")
def keys_ls(
    account: str | None = ACCOUNT_OPTION,
    show_all: bool = typer.Option(False, "--all", help="Include revoked keys."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List an account's keys (prefix, label, dates; never a secret)."""
    acct = current_account(account)
    keys = accounts.list_api_keys(get_app(as_json=as_json).deps, acct, include_revoked=show_all)
    if as_json:
        print_json({"account": acct, "items": [k.to_dict() for k in keys]})
        return
    table = Table("prefix", "label", "created", "revoked")
    for k in keys:
        table.add_row(k.prefix, k.label, _when(k.created_at), _when(k.revoked_at))
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    prefix: str = typer.Argument(..., help="The key's prefix as `keys ls` shows it."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Revoke a key at once; requests with it get 401 from then on."""
    acct = current_account(account)
    try:
        key = accounts.revoke_api_key(get_app(as_json=as_json).deps, acct, prefix)
    except AccountsError as e:
        _fail(e, as_json)
        return
    if as_json:
        print_json(key.to_dict())
    else:
        console.print(f"Revoked key [bold]{key.prefix}[/]")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("init")(init)
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(keys_app, name="keys")
