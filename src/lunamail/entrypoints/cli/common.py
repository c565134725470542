"""Helpers shared by CLI modules: JSON output, errors, settings."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console

console = Console(stderr=False)
err_console = Console(stderr=True)

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document (for scripts).")


def print_json(doc: Any) -> None:
    """One JSON document on stdout, nothing else."""
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    sys.stdout.write("\n")
    sys.stdout.flush()


def fail(message: str, *, code: int = 1, as_json: bool = False, details: Any = None) -> NoReturn:
    """Exit with a clear error (JSON-shaped when --json was asked for)."""
    if as_json:
        print_json({"error": {"code": "error", "message": message, "details": details}})
    else:
        err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)
