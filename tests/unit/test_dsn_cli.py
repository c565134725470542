"""``lunamail feedback parse``: JSON output is exactly the classification."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from typer.testing import CliRunner

from lunamail.entrypoints.cli import feedback_cmds
from lunamail.services.feedback.dsn import classify

CORPUS = Path(__file__).resolve().parents[1] / "data" / "dsn"


def app() -> typer.Typer:
    root = typer.Typer()
    root.command("noop")(lambda: None)  # a second command keeps sub-command routing real
    feedback_cmds.register(root)
    return root


def test_parse_json_prints_the_classification() -> None:
    path = CORPUS / "exim_hard_plain.eml"
    result = CliRunner().invoke(app(), ["feedback", "parse", str(path), "--json"])
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.stdout)
    assert doc == classify(path.read_bytes()).to_dict()
    assert (doc["kind"], doc["bounce_type"], doc["recipients"]) == (
        "bounce",
        "hard",
        ["chris@example.com"],
    )


def test_parse_human_output_and_envelope_option() -> None:
    path = CORPUS / "gmail_hard_511.eml"
    env = "b+abcdefghijklmnopqrstuvwx@bounces.example.com"
    result = CliRunner().invoke(app(), ["feedback", "parse", str(path), "--envelope-to", env])
    assert result.exit_code == 0, result.output
    assert "bounce (hard)" in result.stdout
    assert "sam.rivera@example.com" in result.stdout and env in result.stdout


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app(), ["feedback", "parse", str(tmp_path / "nope.eml"), "--json"])
    assert result.exit_code == 1
    assert "cannot read" in orjson.loads(result.stdout)["error"]["message"]
