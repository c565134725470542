"""The campaigns CLI and the demo, end to end: real SQLite data folder, real SMTP on loopback."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from lunamail.app import signin
from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.entrypoints.cli.context import close_apps
from lunamail.entrypoints.cli.main import app
from lunamail.runtime.bootstrap import bootstrap_in
from tests.support.cli_fixtures import cli, sink

__all__ = ["cli", "sink"]  # the fixtures

HTML = '<p>Hello {{ subscriber.name }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'


def ok(cli: CliRunner, *args: str) -> Any:
    res = cli.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return orjson.loads(res.stdout)


def err(cli: CliRunner, *args: str) -> dict[str, Any]:
    res = cli.invoke(app, [*args, "--json"])
    assert res.exit_code != 0, res.output
    error: dict[str, Any] = orjson.loads(res.stdout)["error"]
    return error


def _draft(cli: CliRunner, tmp_path: Path, html: str = HTML) -> str:
    ok(cli, "lists", "create", "Readers")
    for who in ("ann", "bob", "cy"):
        ok(cli, "subscribers", "add", f"{who}@example.com", "--list", "Readers", "--name", who.title())
    page = tmp_path / "body.html"
    page.write_text(html, "utf-8")
    created = ok(cli, "campaigns", "create", "--name", "CLI", "--list", "Readers", "--subject",
                 "Hi {{ subscriber.name }}", "--from", "News <news@sender.example.org>", "--html", str(page))
    assert created["status"] == "draft"
    return str(created["id"])


def test_create_preview_send_wait_and_report(cli: CliRunner, tmp_path: Path, sink: CaptureServer) -> None:
    camp = _draft(cli, tmp_path)
    preview = ok(cli, "campaigns", "preview", camp, "--email", "zed@example.com", "--name", "Zed")
    assert preview["subject"] == "Hi Zed" and "Hello Zed" in preview["html"]

    done = ok(cli, "campaigns", "send", camp, "--wait", "--timeout", "60")
    assert (done["status"], done["planned"], done["sent"], done["failed"]) == ("sent", 3, 3, 0)
    assert sink.wait_for(3)
    got = {rcpts[0]: email.message_from_bytes(data, policy=email.policy.default) for _, rcpts, data in sink.messages}
    assert set(got) == {"ann@example.com", "bob@example.com", "cy@example.com"}
    assert got["bob@example.com"]["Subject"] == "Hi Bob"

    report = ok(cli, "campaigns", "report", camp)
    assert (report["status"], report["sent"]) == ("sent", 3)
    assert [c["status"] for c in ok(cli, "campaigns", "ls")["items"]] == ["sent"]
    assert err(cli, "campaigns", "pause", camp)["message"].startswith("cannot pause")


def test_pre_send_refusal_names_the_reason(cli: CliRunner, tmp_path: Path, sink: CaptureServer) -> None:
    camp = _draft(cli, tmp_path, html="<p>No way out</p>")
    error = err(cli, "campaigns", "send", camp)
    assert any("unsubscribe" in r for r in error["details"]["reasons"])
    assert sink.messages == []


def test_schedule_then_cancel(cli: CliRunner, tmp_path: Path, sink: CaptureServer) -> None:
    camp = _draft(cli, tmp_path)
    scheduled = ok(cli, "campaigns", "schedule", camp, "--at", "2027-06-01T09:00:00", "--tz", "Europe/Lisbon")
    assert scheduled["status"] == "scheduled"
    # 09:00 in Lisbon's summer time is 08:00 UTC
    assert scheduled["scheduled_at"] == datetime(2027, 6, 1, 8, 0, tzinfo=UTC).isoformat()  # RFC 3339
    assert ok(cli, "campaigns", "cancel", camp)["status"] == "cancelled"


def test_demo_sends_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's main job, small: every synthetic subscriber but the suppressed one gets mail."""
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["demo", "--subscribers", "60", "--data-dir", str(tmp_path / "demo")])
    close_apps()
    assert res.exit_code == 0, res.output
    eml = list((tmp_path / "demo" / "outbox").glob("*.eml"))
    assert len(eml) == 59  # 60 imported, one suppressed
    assert "59 messages sent" in " ".join(res.output.split())
    # the console's one-time link for the demo's owner, valid on the demo's data folder
    [link] = [w for w in res.output.split() if "/login/link/" in w]
    with bootstrap_in(tmp_path / "demo") as system:
        user = signin.link_user(system.deps, link.rsplit("/", 1)[1])
        assert user is not None and user.role == "owner"
    # a second run reuses (wipes) its own folder
    again = CliRunner().invoke(app, ["demo", "--subscribers", "5", "--data-dir", str(tmp_path / "demo")])
    close_apps()
    assert again.exit_code == 0, again.output
    assert len(list((tmp_path / "demo" / "outbox").glob("*.eml"))) == 4
