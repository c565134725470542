"""``lunamail feedback ...``: look at bounce, complaint and auto-reply mail offline, and
ingest it (``feedback ingest``) exactly as inbound mail would be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from lunamail.app import feedback
from lunamail.app.errors import describe
from lunamail.entrypoints.cli.common import JSON_OPTION, console, errors, fail, print_json
from lunamail.entrypoints.cli.context import ACCOUNT_OPTION, door
from lunamail.runtime.presence import workers_running

feedback_app = typer.Typer(
    help="Feedback mail: bounces, complaints (ARF) and auto-replies.",
    no_args_is_help=True,
)

_MAX_FILE = feedback.MAX_MESSAGE_BYTES  # refuse larger files before reading them


@feedback_app.command("parse")
def parse_cmd(
    file: Path = typer.Argument(..., help="A raw message (.eml), as received."),
    envelope_to: str = typer.Option(
        "",
        "--envelope-to",
        help="The SMTP envelope recipient, if known (it may carry the VERP token).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Classify one raw message: bounce (hard/soft), complaint, auto-reply, delay or other."""
    try:
        size = file.stat().st_size
        if size > _MAX_FILE:
            fail(f"{file}: {size} bytes is too large for a feedback message", as_json=as_json)
        raw = file.read_bytes()
    except OSError as exc:
        fail(f"{file}: cannot read: {exc.strerror or exc}", as_json=as_json)
    with errors(as_json):
        doc = feedback.parse(raw, envelope_to=envelope_to or None)
    if as_json:
        print_json(doc)
        return
    kind = f"[bold]{doc['kind']}[/]"
    console.print(kind + (f" ({doc['bounce_type']})" if doc["bounce_type"] else ""))
    rows = [
        ("recipients", ", ".join(doc["recipients"]) or "-"),
        ("status", doc["status"]),
        ("diagnostic", doc["diagnostic"]),
        ("feedback type", doc["feedback_type"]),
        ("verp", doc["verp"]),
        ("original id", doc["original_message_id"]),
        ("subject", doc["subject"]),
    ]
    for label, value in rows:
        if value:
            console.print(f"  {label:<20} {value}", markup=False, highlight=False, soft_wrap=True)
    for name, value in doc["original_headers"].items():
        if name.startswith("x-lunamail-"):
            console.print(f"  {name:<20} {value}", markup=False, highlight=False, soft_wrap=True)


def _ingest_one(env: Any, actor: Any, file: Path, envelope_to: str | None) -> dict[str, Any]:
    """Store, classify and emit one file; the per-file document the command prints."""
    size = file.stat().st_size
    if size > _MAX_FILE:
        raise ValueError(f"{size} bytes is too large for a feedback message")
    out = feedback.ingest(env, actor, file.read_bytes(), envelope_to=envelope_to)
    return {"file": str(file), **out.__dict__}


@feedback_app.command("ingest")
def ingest_cmd(
    files: list[Path] = typer.Argument(..., help="Raw messages (.eml), as received."),
    envelope_to: str = typer.Option(
        "",
        "--envelope-to",
        help="The SMTP envelope recipient of every file (may carry the VERP token).",
    ),
    account: str | None = ACCOUNT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Store each message raw, classify it, and publish its events (bounces and complaints
    then update the lists).  Ingesting the same bytes again changes nothing."""
    system, env, actor = door(account, as_json=as_json)
    results: list[dict[str, Any]] = []
    failed = 0
    for file in files:
        try:
            results.append(_ingest_one(env, actor, file, envelope_to or None))
        except OSError as exc:
            failed += 1
            results.append({"file": str(file), "error": f"cannot read: {exc.strerror or exc}"})
        except ValueError as exc:
            failed += 1
            results.append({"file": str(file), "error": str(exc)})
        except Exception as exc:
            problem = describe(exc)
            if problem is None:
                raise
            failed += 1
            results.append({"file": str(file), "error": problem.message, "code": problem.code})
    if any(r.get("events") for r in results) and not workers_running(system.settings):
        system.runtime().run_until_idle(timeout=120)  # the audience reactions, in this process
    counts: dict[str, int] = {}
    for r in results:
        for ev in r.get("events", []):
            counts[ev["name"]] = counts.get(ev["name"], 0) + 1
    summary = {
        "files": len(results),
        "duplicates": sum(1 for r in results if r.get("duplicate")),
        "errors": failed,
        "events": counts,
    }
    if as_json:
        print_json({"results": results, "summary": summary})
    else:
        for r in results:
            if "error" in r:
                console.print(f"[red]{escape(r['file'])}[/]: {escape(r['error'])}", highlight=False)
                continue
            what = r["kind"] + (f" ({r['bounce_type']})" if r["bounce_type"] else "")
            note = " [dim](already ingested)[/]" if r["duplicate"] else ""
            console.print(f"[bold]{escape(r['file'])}[/]: {escape(what)}{note}", highlight=False)
            who = ", ".join(r["recipients"]) or "-"
            console.print(
                f"  recipients {who}  campaign {r['campaign'] or '-'}",
                markup=False,
                highlight=False,
            )
            for ev in r["events"]:
                console.print(
                    f"  -> {ev['name']} {ev.get('email', '')}", markup=False, highlight=False
                )
        console.print(
            f"{summary['files']} file(s), {sum(counts.values())} event(s), "
            f"{summary['duplicates']} already ingested, {failed} error(s)"
        )
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(feedback_app, name="feedback")
