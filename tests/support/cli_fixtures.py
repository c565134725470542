"""Pytest fixtures for tests that drive the ``lunamail`` CLI on a fresh data folder
(import them into a test module): an SMTP capture server, and a runner on an initialised
folder whose relay is that server and whose account has the suite's sending domain,
added with ``lunamail domains add`` as a user would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.entrypoints.cli.context import close_apps
from lunamail.entrypoints.cli.main import app
from tests.support.domains import SENDER_DOMAIN


@pytest.fixture
def sink() -> Iterator[CaptureServer]:
    with CaptureServer("127.0.0.1", 0) as server:
        yield server


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sink: CaptureServer) -> Iterator[CliRunner]:
    for var in ("LUNAMAIL_CONFIG", "LUNAMAIL_ACCOUNT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LUNAMAIL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LUNAMAIL_SMTP_URL", f"smtp://127.0.0.1:{sink.port}")
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0  # an uninitialised folder is refused
    assert runner.invoke(app, ["domains", "add", SENDER_DOMAIN]).exit_code == 0  # the drafts' From
    yield runner
    close_apps()
