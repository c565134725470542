"""A Python client generated from the live OpenAPI document (openapi-python-client) type-checks
under ``mypy --strict`` and drives a real ``lunamail serve`` end to end: list, import, campaign,
send to a local SMTP sink, report.  The client is generated into a temporary folder each run
(never committed): the test proves the document is good enough to generate from today."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts
from tests.support.live_server import live_serve
from tests.support.motoserver import free_port

DRIVER = Path(__file__).parent / "client_driver" / "drive.py"
BIN = Path(sys.executable).parent
RECIPIENTS = 40


def _run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_generated_client_type_checks_and_sends_a_campaign(tmp_path: Path) -> None:
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email,name,city\n" + "".join(
        f"p{i}@example.net,Person {i},Town{i % 3}\n" for i in range(RECIPIENTS)) + "not-an-address,Bad,X\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with CaptureServer("127.0.0.1", 0) as sink, bootstrap_in(
        tmp_path / "data", settings_overrides={"smtp_url": f"smtp://127.0.0.1:{sink.port}", "base_url": base},
    ) as system:
        accounts.create_account(system.deps, "Default", account_id="default")
        key = accounts.create_api_key(system.deps, "default", "generated client").secret
        with live_serve(system, port=port):
            spec = tmp_path / "openapi.json"
            spec.write_bytes(httpx.get(f"{base}/openapi.json", timeout=10).content)
            _run(BIN / "openapi-python-client", "generate", "--path", spec, "--output-path",
                 tmp_path / "lunamail_client", "--meta", "none", cwd=tmp_path)
            env = {**os.environ, "MYPYPATH": str(tmp_path), "PYTHONPATH": str(tmp_path)}
            checked = _run(BIN / "mypy", "--strict", "--no-incremental", "--cache-dir", tmp_path / ".mypy",
                           DRIVER, cwd=tmp_path, env=env)
            assert "Success: no issues found" in checked
            out = json.loads(_run(sys.executable, DRIVER, base, key, csv_file, cwd=tmp_path, env=env))
        assert out["imported"] == RECIPIENTS and out["audience_size"] == RECIPIENTS
        assert out["status"] == "sent" and out["sent"] == RECIPIENTS and out["failed"] == 0
        assert out["started_at"] and out["started_at"].endswith("+00:00")
        assert sink.count == RECIPIENTS
        assert {rcpt for _, rcpts, _ in sink.messages for rcpt in rcpts} == {
            f"p{i}@example.net" for i in range(RECIPIENTS)}
