"""``lunamail feedback ...``: look at bounce, complaint and auto-reply mail offline."""

from __future__ import annotations

from pathlib import Path

import typer

from lunamail.entrypoints.cli.common import JSON_OPTION, console, fail, print_json
from lunamail.services.feedback.dsn import classify

feedback_app = typer.Typer(
    help="Feedback mail: bounces, complaints (ARF) and auto-replies.",
    no_args_is_help=True,
)

# Refuse files far beyond any real feedback message rather than read them whole.
_MAX_FILE = 64 * 1024 * 1024


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
    result = classify(raw, envelope_to=envelope_to or None)
    doc = result.to_dict()
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


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(feedback_app, name="feedback")
