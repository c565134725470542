"""The ``lunamail`` command.  Each area registers its own commands from its own module."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="lunamail",
    help="Lunamail: event-driven email marketing. Every command works on the data folder "
    "(LUNAMAIL_DATA_DIR, default ./lunamail-data) without a running server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# One module per area; each exposes ``register(app)``.
_MODULES = (
    "accounts_cmds",
    "runtime_cmds",
    "audience_cmds",
    "campaigns_cmds",
    "report_cmds",
    "feedback_cmds",
    "guard_cmds",
    "demo_cmd",
    "server_cmds",
)

for _name in _MODULES:
    _mod = importlib.import_module(f"{__package__}.{_name}")
    _mod.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
