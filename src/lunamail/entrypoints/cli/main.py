"""The ``lunamail`` command.  Each area registers its own commands from its own module.

Exit codes (the same for every command): 0 done, 1 the operation failed, 2 the command
line is wrong.  With ``--json`` every failure, usage errors included, prints one
``{"error": {"code", "message", "details"}}`` document.
"""

from __future__ import annotations

import importlib
import sys

import typer

from lunamail import __version__
from lunamail.entrypoints.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    console,
    err_console,
    print_json,
)

app = typer.Typer(
    name="lunamail",
    help="Lunamail: event-driven email marketing. Every command works on the data folder "
    "(LUNAMAIL_DATA_DIR, default ./lunamail-data) without a running server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)



def _show_version(value: bool) -> None:
    if value:
        console.print(f"lunamail {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Lunamail: event-driven email marketing."""


# One module per area; each exposes ``register(app)``.
_MODULES = (
    "accounts_cmds",
    "runtime_cmds",
    "audience_cmds",
    "campaigns_cmds",
    "report_cmds",
    "feedback_cmds",
    "guard_cmds",
    "domains_cmds",
    "demo_cmd",
    "server_cmds",
)

for _name in _MODULES:
    _mod = importlib.import_module(f"{__package__}.{_name}")
    _mod.register(app)


# typer vendors its own click: its UsageError is the base of typer.BadParameter
_USAGE_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def main(argv: list[str] | None = None) -> None:
    """The console script: runs the app, and prints usage errors as JSON under ``--json``."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = app(args=args, prog_name="lunamail", standalone_mode=False)
    except _USAGE_ERROR as exc:
        if "--json" in args:
            print_json({"error": {"code": "usage_error", "message": exc.format_message(), "details": {}}})  # type: ignore[attr-defined]
        else:
            exc.show()  # type: ignore[attr-defined]
        sys.exit(EXIT_USAGE)
    except typer.TyperException as exc:  # typer's ClickException
        exc.show()  # type: ignore[attr-defined]
        sys.exit(int(getattr(exc, "exit_code", EXIT_FAILED)))
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
