"""Runtime commands: ``lunamail worker`` and ``lunamail dlq ls|replay``.

Thin on purpose: wiring and behaviour live in ``lunamail.runtime``.
"""

from __future__ import annotations

import logging
import os
import signal
from datetime import UTC, datetime

import typer
from rich.table import Column, Table

from lunamail.app import runtime_ops
from lunamail.config import ConfigError, Settings
from lunamail.entrypoints.cli.common import (
    EXIT_USAGE,
    JSON_OPTION,
    console,
    err_console,
    errors,
    fail,
    print_json,
)
from lunamail.entrypoints.cli.context import initialised, operator
from lunamail.lib.redact import install_log_redaction
from lunamail.runtime.bootstrap import System, bootstrap
from lunamail.runtime.presence import announce
from lunamail.runtime.routing import RoutingError, load_router
from lunamail.runtime.supervisor import watch_parent

ROUTER_OPTION = typer.Option(
    None,
    "--router",
    envvar="LUNAMAIL_ROUTER",
    hidden=True,
    help="module:attr of a Router to run instead of the built-in table (tests, plugins).",
)


def _system(router_spec: str | None) -> System:
    try:
        router = load_router(router_spec) if router_spec else None
        settings = Settings.load()
    except (ConfigError, RoutingError) as e:
        fail(str(e))
    if not initialised(settings):
        fail(f"no Lunamail data in {settings.data_dir.resolve()}: run `lunamail init` first",
             code="not_initialised")
    try:
        return bootstrap(settings, router=router)
    except ConfigError as e:
        fail(str(e))


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def worker(
    concurrency: int = typer.Option(
        0, "--concurrency", "-c", min=0, help="Handlers run at once (default: settings.workers)."
    ),
    router: str | None = ROUTER_OPTION,
) -> None:
    """Run the handlers from the queue until Ctrl-C / SIGTERM (in-flight work finishes first).

    Safe to run several at once on one data folder.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_log_redaction()  # no password or key reaches the log
    with _system(router) as system:
        runtime = system.runtime(concurrency=concurrency or None)

        def ready() -> None:
            # Started by `lunamail serve`: stop gracefully (as on SIGTERM) if serve dies
            # first.  Watched from here on, once SIGTERM means "stop gracefully".
            watch_parent(lambda: os.kill(os.getpid(), signal.SIGTERM))
            err_console.print(
                f"lunamail worker: {runtime.concurrency} at once on {len(runtime.queues)} queues "
                f"in {system.settings.data_dir} (Ctrl-C to stop)"
            )

        with announce(system.settings):  # lets `campaigns send` see a worker is serving
            runtime.serve(on_ready=ready)
        err_console.print(f"lunamail worker stopped: {runtime.status_line()}")


dlq_app = typer.Typer(
    help="Dead letters: messages that failed every attempt.", no_args_is_help=True
)


@dlq_app.command("ls")
def dlq_ls(
    limit: int = typer.Option(100, "--limit", min=1, help="Show at most this many."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List dead letters: id, queue, message, attempts, error, when."""
    _system, env, actor = operator(as_json=as_json)
    with errors(as_json):
        views = runtime_ops.dead_letters(env, actor, limit=limit).items
    if as_json:
        print_json({"items": [v.to_dict() for v in views], "next_cursor": None})
        return
    if not views:
        console.print("no dead letters")
        return
    # ids are copied into `dlq replay`, so they never wrap
    table = Table(Column("id", no_wrap=True), "queue", "message", "attempts", "error", "failed at")
    for v in views:
        table.add_row(v.id, v.queue, v.message, str(v.attempts), v.error, _when(v.failed_at))
    console.print(table)


@dlq_app.command("replay")
def dlq_replay(
    ids: list[str] | None = typer.Argument(None, help="Dead-letter ids to replay."),
    replay_all: bool = typer.Option(False, "--all", help="Replay every dead letter."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Put dead letters back on their queue with attempts reset (after fixing the cause)."""
    if bool(ids) == replay_all:
        fail("give dead-letter ids or --all (not both)", as_json=as_json, exit_code=EXIT_USAGE, code="usage_error")
    _system, env, actor = operator(as_json=as_json)
    with errors(as_json):
        done = runtime_ops.replay(env, actor, ids, replay_all=replay_all)
    moved, missing = done.replayed, done.not_found
    if as_json:
        print_json({"replayed": moved, "not_found": missing})
    else:
        console.print(f"replayed {moved}" + (f" ({missing} id(s) not found)" if missing else ""))
    if missing and not moved:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``dlq`` to the root app."""
    app.command("worker")(worker)
    app.add_typer(dlq_app, name="dlq")
