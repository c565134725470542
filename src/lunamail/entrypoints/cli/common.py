"""Helpers shared by CLI modules: JSON output, errors, settings.

Exit codes: 0 the command did what it was asked, 1 the operation failed (a not-found,
a conflict, a refused send, ...), 2 the command line is wrong (usage).  With ``--json``
a failure prints ``{"error": {"code", "message", "details"}}`` with the same stable
codes as the REST API (:mod:`lunamail.app.errors`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from lunamail.app.errors import describe
from lunamail.lib.redact import redact

console = Console(stderr=False)
err_console = Console(stderr=True)

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document (for scripts).")


def rfc3339(epoch: float) -> str:
    """An instant as RFC 3339 with its offset (UTC), e.g. ``2026-12-07T15:04:05.250000+00:00``."""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def json_ready(doc: Any) -> Any:
    """``doc`` with every instant (a number under a key ``at`` or ending in ``_at``) as an
    RFC 3339 string, as the REST API shows them."""
    if isinstance(doc, dict):
        return {
            k: rfc3339(v) if (k == "at" or str(k).endswith("_at")) and isinstance(v, int | float)
            and not isinstance(v, bool) else json_ready(v)
            for k, v in doc.items()
        }  # fmt: skip
    if isinstance(doc, list | tuple):
        return [json_ready(v) for v in doc]
    return doc


def print_json(doc: Any) -> None:
    """One JSON document on stdout, nothing else (instants as RFC 3339 strings)."""
    sys.stdout.write(orjson.dumps(json_ready(doc), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    sys.stdout.write("\n")
    sys.stdout.flush()


EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def fail(
    message: str,
    *,
    exit_code: int = EXIT_FAILED,
    as_json: bool = False,
    details: Any = None,
    code: str = "failed",
) -> NoReturn:
    """Exit with a clear error (JSON-shaped when --json was asked for); ``code`` is the
    stable error code, ``exit_code`` the process's.  Secrets in the message are redacted."""
    message = redact(message)
    if as_json:
        print_json({"error": {"code": code, "message": message, "details": details or {}}})
    else:
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(exit_code)


@contextmanager
def errors(as_json: bool) -> Iterator[None]:
    """Known service and application errors -> one message, their stable code, exit 1.
    Anything else is a bug and propagates."""
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        problem = describe(exc)
        if problem is None:
            raise
        fail(problem.message, as_json=as_json, details=problem.details, code=problem.code)
