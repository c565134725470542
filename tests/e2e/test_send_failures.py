"""Sends that go wrong, told as they are, over real SMTP on 127.0.0.1.

* Nobody reachable: a relay that refuses every recipient ends the campaign ``failed``
  (not ``sent``), and the report says why.
* Relay down: nothing listens on the relay's port; within a few seconds the report says
  ``stalled`` with the connection error and since when; once a relay listens there the
  campaign completes by itself, everyone once.
* Test sends: the answer per address is what the relay said (a refused address, a relay
  that is down), never a blanket "sent".
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from lunamail.app import campaigns as campaigns_app
from lunamail.app import reports as reports_app
from lunamail.app.base import Actor, Env
from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts
from lunamail.services.campaigns import api as campaigns
from tests.e2e.campaign_support import ACCOUNT, make_audience, make_campaign


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (until a test starts a relay there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_campaign_nobody_could_receive_ends_failed_with_the_reason(tmp_path: Path) -> None:
    refused = {f"r{i:06d}@example.net": (550, "5.7.1 relaying denied") for i in range(20)}
    with CaptureServer("127.0.0.1", 0, fail=refused) as sink, bootstrap_in(
        tmp_path / "data", settings_overrides={"smtp_url": f"smtp://127.0.0.1:{sink.port}"},
    ) as system:
        aud = make_audience(system, 20, tmp_path)
        camp = make_campaign(system, aud.list_id)
        env, actor = Env(system.deps, system.bus.publish), Actor(ACCOUNT)
        campaigns_app.send(env, actor, camp)

        def ended() -> bool:
            return reports_app.campaign_report(env, actor, camp)["status"] in ("sent", "failed")

        assert system.run_until(ended, timeout=60)
        report = reports_app.campaign_report(env, actor, camp)
        status = campaigns.get(system.deps, ACCOUNT, camp).status
    print(f"\nreport: status {report['status']}, failed {report['failed']}, reason {report['reason']!r}")
    assert sink.count == 0
    assert report["status"] == "failed" and str(status) == "failed"
    assert report["sent"] == 0 and report["failed"] == len(aud.expected)
    assert report["reason"].startswith(f"nothing could be delivered: all {len(aud.expected)} recipients failed")
    assert f"550 5.7.1 ({len(aud.expected)})" in report["reason"]
    assert report["failures"]["top"] == [{"reason": "550 5.7.1", "count": len(aud.expected)}]


def test_relay_down_shows_stalled_then_the_campaign_completes_when_it_is_back(tmp_path: Path) -> None:
    port = _closed_port()
    overrides = {"smtp_url": f"smtp://127.0.0.1:{port}", "defer_base_delay": 0.5, "defer_max_attempts": 30,
                 "smtp_timeout": 5.0, "batch_size": 20}
    with bootstrap_in(tmp_path / "data", settings_overrides=overrides) as system:
        aud = make_audience(system, 60, tmp_path)
        camp = make_campaign(system, aud.list_id)
        env, actor = Env(system.deps, system.bus.publish), Actor(ACCOUNT)
        campaigns_app.send(env, actor, camp)
        started = time.monotonic()
        assert system.run_until(lambda: reports_app.campaign_report(env, actor, camp)["status"] == "stalled",
                                timeout=30), reports_app.campaign_report(env, actor, camp)
        seen_after = time.monotonic() - started
        stalled = reports_app.campaign_report(env, actor, camp)
        with CaptureServer("127.0.0.1", port) as sink:
            assert system.run_until(lambda: reports_app.campaign_report(env, actor, camp)["status"] == "sent",
                                    timeout=120), reports_app.campaign_report(env, actor, camp)
            done = reports_app.campaign_report(env, actor, camp)
            received = [r for _, rcpts, _ in sink.messages for r in rcpts]
    print(f"\nstalled after {seen_after:.1f} s: {stalled['stalled']}; then sent {done['sent']}, "
          f"{len(received)} received")
    assert stalled["stalled"] is not None and stalled["sent"] == 0
    assert "cannot connect" in stalled["stalled"]["reason"] and "4.4.1" in stalled["stalled"]["reason"]
    assert 0 < stalled["stalled"]["since"] <= time.time()
    assert done["stalled"] is None and done["sent"] == len(aud.expected) and done["failed"] == 0
    assert sorted(received) == sorted(aud.expected)  # everyone, once


def test_a_test_send_says_what_the_relay_answered(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with CaptureServer("127.0.0.1", 0, fail={"nobody@example.net": (550, "5.1.1 no such user")}) as sink:
        url = f"smtp://127.0.0.1:{sink.port}"
        with bootstrap_in(data, settings_overrides={"smtp_url": url}) as system:
            accounts.create_account(system.deps, "Tests", account_id=ACCOUNT)  # the CLI below needs it
            aud = make_audience(system, 20, tmp_path)
            camp = make_campaign(system, aud.list_id)
            env, actor = Env(system.deps, system.bus.publish), Actor(ACCOUNT)
            queued = campaigns_app.test(env, actor, camp, ["ok@example.net", "nobody@example.net"])
            system.runtime().run_until_idle(timeout=30)
            result = campaigns_app.test_result(env, actor, camp, queued.test_id)
        # the CLI with the relay down: it says so and exits 1
        cli_env = {**os.environ, "LUNAMAIL_DATA_DIR": str(data), "COLUMNS": "250",
                   "LUNAMAIL_SMTP_URL": f"smtp://127.0.0.1:{_closed_port()}"}
        down = subprocess.run([sys.executable, "-m", "lunamail.entrypoints.cli.main", "campaigns", "test", camp,
                               "--to", "ok@example.net"], env=cli_env, capture_output=True, timeout=120)
        # and with the relay up, to a refused address
        cli_env["LUNAMAIL_SMTP_URL"] = url
        refused = subprocess.run([sys.executable, "-m", "lunamail.entrypoints.cli.main", "campaigns", "test", camp,
                                  "--to", "nobody@example.net"], env=cli_env, capture_output=True, timeout=120)
        ok = subprocess.run([sys.executable, "-m", "lunamail.entrypoints.cli.main", "campaigns", "test", camp,
                             "--to", "ok@example.net"], env=cli_env, capture_output=True, timeout=120)
    print(f"\napp: {result}\nrelay down: {down.stdout.decode()!r}\nrefused: {refused.stdout.decode()!r}")
    answers = {a.address: a for a in result.answers}
    assert result.status == "failed"
    assert answers["ok@example.net"].outcome == "sent" and answers["ok@example.net"].code == 250
    assert answers["nobody@example.net"].outcome == "failed" and answers["nobody@example.net"].code == 550
    assert "5.1.1 no such user" in answers["nobody@example.net"].reply
    assert down.returncode == 1 and "NOT sent to ok@example.net" in down.stdout.decode()
    assert "cannot connect" in down.stdout.decode()
    assert refused.returncode == 1 and "550" in refused.stdout.decode() and "no such user" in refused.stdout.decode()
    assert ok.returncode == 0, ok.stderr.decode()[-2000:]
    assert "sent to ok@example.net (250)" in ok.stdout.decode()
    assert sorted(r for _, rcpts, _ in sink.messages for r in rcpts) == ["ok@example.net", "ok@example.net"]
