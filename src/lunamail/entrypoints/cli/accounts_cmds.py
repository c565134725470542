"""Account and API key commands: ``lunamail init``, ``lunamail accounts ...``, ``lunamail keys ...``.

A key's secret is printed exactly once, when it is made; afterwards only its
prefix is ever shown, because only its hash is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from lunamail.app import accounts as app_accounts
from lunamail.app import users as users_app
from lunamail.domain.accounts import DEFAULT_ACCOUNT
from lunamail.entrypoints.cli.common import (
    JSON_OPTION,
    console,
    err_console,
    errors,
    print_json,
)
from lunamail.entrypoints.cli.context import ACCOUNT_OPTION, door, env_of, get_app, operator

DEFAULT_OWNER = "owner@example.com"
ROLE_HELP = "owner, admin, sender, editor or viewer"

def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _show_secret(secret: str) -> None:
    console.print(f"API key: [bold]{secret}[/]")
    err_console.print("Store it now: it is shown only this once (only its hash is kept).")

def init(
    new_key: bool = typer.Option(False, "--new-key", help="Issue another key for an existing default account."),
    owner: str = typer.Option(DEFAULT_OWNER, "--owner", help="E-mail address of the owner, who signs in to the console."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create the data folder, the "default" account, its first API key and its owner
    (with a one-time link to set the password); idempotent."""
    system = get_app(as_json=as_json, initialising=True)
    with errors(as_json):
        done = app_accounts.initialise(env_of(system), new_key=new_key, owner=owner)
    data_dir = str(system.settings.data_dir.resolve())
    if as_json:
        print_json({"account": done.account, "api_key": done.api_key, "data_dir": data_dir, "created": done.created,
                    "owner": done.owner, "set_password_link": done.owner_link})
        return
    if done.created:
        console.print(f"Created account [bold]{DEFAULT_ACCOUNT}[/] in {data_dir}")
    else:
        console.print(f"Account [bold]{DEFAULT_ACCOUNT}[/] already exists in {data_dir}")
    if done.api_key:
        _show_secret(done.api_key)
    else:
        console.print("No new key printed (use --new-key to issue one).")
    if done.owner and done.owner_link:
        _show_link(done.owner, done.owner_link)


def _show_link(email: str, link: str) -> None:
    console.print(f"Console user [bold]{email}[/]: set the password at [bold]{link}[/]")
    err_console.print("The link works once, for 24 hours (`lunamail users link EMAIL` makes a new one).")

# ---------------------------------------------------------------- accounts

accounts_app = typer.Typer(help="Accounts (tenants): every list and campaign belongs to one.", no_args_is_help=True)

@accounts_app.command("ls")
def accounts_ls(as_json: bool = JSON_OPTION) -> None:
    """List accounts with their sending state."""
    _system, env, actor = operator(as_json=as_json)
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    with errors(as_json):
        while True:
            page = app_accounts.list_accounts(env, actor, cursor=cursor)
            found.extend(a.to_dict() for a in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    if as_json:
        print_json({"items": found, "next_cursor": None})
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
    _system, env, actor = operator(as_json=as_json)
    with errors(as_json):
        acct = app_accounts.create_account(env, actor, name, account_id=account_id)
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
    _system, env, actor = operator(as_json=as_json)
    with errors(as_json):
        done = app_accounts.unlock(env, actor, app_accounts.actor(env, account_id).account)
    if as_json:
        print_json({**done.account.to_dict(), "changed": done.changed})
    elif done.changed:
        console.print(f"Account [bold]{account_id}[/] may send again.")
    else:
        console.print(f"Account [bold]{account_id}[/] was not locked.")

# ---------------------------------------------------------------- keys

keys_app = typer.Typer(help="API keys for the HTTP API (Authorization: Bearer <key>).", no_args_is_help=True)

@keys_app.command("create")
def keys_create(
    account: str | None = ACCOUNT_OPTION,
    label: str = typer.Option("", "--label", help="What the key is for."),
    role: str = typer.Option("admin", "--role", help=f"What the key may do: {ROLE_HELP}."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Issue a key; its secret is printed this once."""
    _system, env, actor = door(account, as_json=as_json)
    acct = actor.account
    with errors(as_json):
        issued = app_accounts.create_key(env, actor, label=label, role=role)
    if as_json:
        print_json({**issued.key.to_dict(), "api_key": issued.secret})
    else:
        console.print(f"Key [bold]{issued.key.prefix}[/] ({issued.key.role}) for account {acct}")
        _show_secret(issued.secret)

@keys_app.command("ls")
def keys_ls(
    account: str | None = ACCOUNT_OPTION,
    show_all: bool = typer.Option(False, "--all", help="Include revoked keys."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List an account's keys (prefix, label, dates; never a secret)."""
    _system, env, actor = door(account, as_json=as_json)
    acct = actor.account
    with errors(as_json):
        keys = app_accounts.list_keys(env, actor, include_revoked=show_all)
    if as_json:
        print_json({"account": acct, "items": [k.to_dict() for k in keys], "next_cursor": None})
        return
    table = Table("prefix", "label", "role", "created", "revoked")
    for k in keys:
        table.add_row(k.prefix, k.label, k.role, _when(k.created_at), _when(k.revoked_at))
    console.print(table)

@keys_app.command("revoke")
def keys_revoke(
    prefix: str = typer.Argument(..., help="The key's prefix as `keys ls` shows it."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Revoke a key at once; requests with it get 401 from then on."""
    _system, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        key = app_accounts.revoke_key(env, actor, prefix)
    if as_json:
        print_json(key.to_dict())
    else:
        console.print(f"Revoked key [bold]{key.prefix}[/]")

# ---------------------------------------------------------------- users

users_app_cli = typer.Typer(help=f"Console users of an account and their roles ({ROLE_HELP}).",
                            no_args_is_help=True)


@users_app_cli.command("add")
def users_add(
    email: str = typer.Argument(..., help="The address the user signs in with."),
    role: str = typer.Option("viewer", "--role", help=f"{ROLE_HELP}."),
    name: str = typer.Option("", "--name", help="Display name."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a user; prints their one-time link to set a password."""
    _, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        invited = users_app.add_user(env, actor, email, role, name=name)
    if as_json:
        print_json({**invited.user.to_dict(), "set_password_link": invited.link})
    else:
        console.print(f"Added [bold]{invited.user.email}[/] as {invited.user.role} to account {actor.account}")
        _show_link(invited.user.email, invited.link)


@users_app_cli.command("ls")
def users_ls(account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List the account's users and roles."""
    _, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        found = users_app.list_users(env, actor)
    if as_json:
        print_json({"items": [u.to_dict() for u in found], "next_cursor": None})
        return
    table = Table("email", "name", "role", "password set", "created")
    for u in found:
        table.add_row(u.email, u.name, u.role, "yes" if u.has_password else "no", _when(u.created_at))
    console.print(table)


@users_app_cli.command("rm")
def users_rm(
    email: str = typer.Argument(...), account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Remove a user (their sessions end at once)."""
    _, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        users_app.remove_user(env, actor, email)
    if as_json:
        print_json({"email": email.strip().lower(), "removed": True})
    else:
        console.print(f"Removed [bold]{email}[/]")


@users_app_cli.command("role")
def users_role(
    email: str = typer.Argument(...),
    role: str = typer.Argument(..., help=f"{ROLE_HELP}."),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Change a user's role (takes effect at their next request)."""
    _, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        user = users_app.set_role(env, actor, email, role)
    if as_json:
        print_json(user.to_dict())
    else:
        console.print(f"[bold]{user.email}[/] is now {user.role}")


@users_app_cli.command("link")
def users_link(
    email: str = typer.Argument(...), account: str | None = ACCOUNT_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Make a new one-time link for a user to set their password."""
    _, env, actor = door(account, as_json=as_json)
    with errors(as_json):
        link = users_app.new_link(env, actor, email)
    if as_json:
        print_json({"email": email.strip().lower(), "set_password_link": link})
    else:
        _show_link(email, link)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("init")(init)
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(keys_app, name="keys")
    app.add_typer(users_app_cli, name="users")
