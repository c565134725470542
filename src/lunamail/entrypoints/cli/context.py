"""The CLI's process-wide context: the bootstrapped system and the current account.

Every command module imports ``get_app()`` and ``current_account()`` from here,
so one process opens the data folder once and all commands agree on which
account they act for (``--account`` > ``LUNAMAIL_ACCOUNT`` > "default").
"""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import replace

import typer

from lunamail.app import accounts
from lunamail.app.base import Actor, Env
from lunamail.config import ConfigError, Settings
from lunamail.domain.accounts import DEFAULT_ACCOUNT
from lunamail.entrypoints.cli.common import EXIT_USAGE, errors, fail
from lunamail.runtime.bootstrap import SYSTEM_ACCOUNT, System, bootstrap

ACCOUNT_ENV = "LUNAMAIL_ACCOUNT"

ACCOUNT_OPTION = typer.Option(
    None,
    "--account",
    envvar=ACCOUNT_ENV,
    help="Account to act for (default: LUNAMAIL_ACCOUNT, else 'default').",
)

_lock = threading.Lock()
_systems: dict[tuple[tuple[str, str], ...], System] = {}


def _env_key() -> tuple[tuple[str, str], ...]:
    # The system depends only on LUNAMAIL_* settings; a test that changes them gets a new one.
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("LUNAMAIL_")))


def initialised(settings: Settings) -> bool:
    """Whether ``lunamail init`` (or anything that opened the store or queue) ran on the data
    folder.  A shared store (DynamoDB) does not live in the folder: always "there"."""
    if settings.store != "sqlite":
        return True
    return any(p.exists() for p in (settings.db_path, settings.queue_path, settings.master_key_path))


def get_app(*, as_json: bool = False, initialising: bool = False) -> System:
    """The system for the current settings, bootstrapped once per process (closed at exit).
    A folder that was never initialised is refused (and not created) unless ``initialising``."""
    key = _env_key()
    with _lock:
        system = _systems.get(key)
        if system is None:
            try:
                settings = Settings.load()
            except ConfigError as e:
                fail(str(e), as_json=as_json, exit_code=EXIT_USAGE, code="invalid_settings")
            if not initialising and not initialised(settings):
                where = settings.data_dir.resolve()
                fail(
                    f"no Lunamail data in {where}: run `lunamail init` first "
                    f"(or set LUNAMAIL_DATA_DIR to an initialised folder)",
                    as_json=as_json, code="not_initialised", details={"data_dir": str(where)},
                )  # fmt: skip
            try:
                system = bootstrap(settings)
            except ConfigError as e:
                fail(str(e), as_json=as_json, code="invalid_settings")
            _systems[key] = system
        return system


def close_apps() -> None:
    """Close every system this process opened (tests call it between runs)."""
    with _lock:
        systems = list(_systems.values())
        _systems.clear()
    for system in systems:
        system.close()


atexit.register(close_apps)


def current_account(explicit: str | None = None) -> str:
    """The account a command acts for: the option, else the environment, else "default"."""
    value = (explicit or os.environ.get(ACCOUNT_ENV) or "").strip()
    return value or DEFAULT_ACCOUNT


def env_of(system: System) -> Env:
    """What the application layer's use cases run with in this process."""
    return Env(system.deps, system.bus.publish, system.queue)


def door(account: str | None, *, as_json: bool = False) -> tuple[System, Env, Actor]:
    """The system, its Env and the actor for ``--account`` (an unknown account fails).
    Whoever runs the CLI on the data folder holds all of it: the installation's operator."""
    system = get_app(as_json=as_json)
    env = env_of(system)
    with errors(as_json):
        actor = replace(accounts.actor(env, current_account(account), role="owner"), installation=True)
    return system, env, actor


def operator(*, as_json: bool = False) -> tuple[System, Env, Actor]:
    """For installation-wide commands (accounts, dead letters): the operator, no account."""
    system = get_app(as_json=as_json)
    return system, env_of(system), Actor(SYSTEM_ACCOUNT, "owner", installation=True)
