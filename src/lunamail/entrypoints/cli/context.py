"""The CLI's process-wide context: the bootstrapped system and the current account.

Every command module imports ``get_app()`` and ``current_account()`` from here,
so one process opens the data folder once and all commands agree on which
account they act for (``--account`` > ``LUNAMAIL_ACCOUNT`` > "default").
"""

from __future__ import annotations

import atexit
import os
import threading

import typer

from lunamail.app import accounts
from lunamail.app.base import Actor, Env
from lunamail.config import ConfigError, Settings
from lunamail.domain.accounts import DEFAULT_ACCOUNT
from lunamail.entrypoints.cli.common import errors, fail
from lunamail.runtime.bootstrap import System, bootstrap

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


def get_app(*, as_json: bool = False) -> System:
    """The system for the current settings, bootstrapped once per process (closed at exit)."""
    key = _env_key()
    with _lock:
        system = _systems.get(key)
        if system is None:
            try:
                system = bootstrap(Settings.load())
            except ConfigError as e:
                fail(str(e), as_json=as_json)
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
    return Env(system.deps, system.bus.publish)


def door(account: str | None, *, as_json: bool = False) -> tuple[System, Env, Actor]:
    """The system, its Env and the actor for ``--account`` (an unknown account fails)."""
    system = get_app(as_json=as_json)
    env = env_of(system)
    with errors(as_json):
        actor = accounts.actor(env, current_account(account))
    return system, env, actor
