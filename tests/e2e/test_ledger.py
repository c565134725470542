"""The per-recipient ledger over real SMTP: a relay that refuses chosen addresses with 550,
defers one with 452 until it runs out of attempts, drops the connection on another every
time (and once on whatever is in flight at message 30), and two members are suppressed.

The ledger (CLI and API), its CSV export and the report agree exactly: every planned
recipient has one outcome (the suppressed ones ``skipped`` with the reason), the failures
carry code, enhanced status, text and whether they are retryable, and the report's top
reasons add up to its failed count.  Then the relay recovers and ``retry --failed`` sends
the two retryable failures and nothing else, once, however often it is asked.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from lunamail.app import campaigns as campaigns_app
from lunamail.app import reports as reports_app
from lunamail.app.base import Actor, Env
from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.entrypoints.http.app import create_app
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts
from lunamail.services.campaigns import api as campaigns
from lunamail.services.reports import api as reports
from tests.e2e.campaign_support import ACCOUNT, make_audience, make_campaign

REFUSED = {"r000010@example.net": (550, "5.1.1 no such user"), "r000011@example.net": (550, "5.1.1 no such user"),
           "r000012@example.net": (550, "5.7.1 rejected by policy")}
FULL = "r000020@example.net"
DROPPED = "r000021@example.net"
SUPPRESSED = {"r000005@example.net", "r000042@example.net"}  # by make_audience


def _cli(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "lunamail.entrypoints.cli.main", *args], env=env,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return out


def _ledger(env: Env, actor: Actor, camp: str) -> list[dict[str, Any]]:
    """The whole ledger through the app layer, page by page."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = reports_app.recipients(env, actor, camp, limit=37, cursor=cursor)
        rows += page.items
        cursor = page.next_cursor
        if cursor is None:
            return rows


def _counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    return by_status


def test_ledger_csv_and_report_agree_and_retry_resends_only_the_retryable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fail: dict[str, tuple[int, str]] = {**REFUSED, FULL: (452, "4.2.2 mailbox full")}
    with CaptureServer("127.0.0.1", 0, fail=fail, drop={DROPPED}, drop_once_after=30) as sink:
        url = f"smtp://127.0.0.1:{sink.port}"
        overrides = {"smtp_url": url, "batch_size": 100, "defer_base_delay": 0.2, "defer_max_attempts": 2}
        with bootstrap_in(data, settings_overrides=overrides) as system:
            deps = system.deps
            accounts.create_account(deps, "Ledger", account_id=ACCOUNT)
            key = accounts.create_api_key(deps, ACCOUNT, "test").secret
            aud = make_audience(system, 300, tmp_path)
            camp = make_campaign(system, aud.list_id)
            system.bus.publish([campaigns.send_now(deps, ACCOUNT, camp)])
            assert system.run_until(lambda: reports.campaign_report(deps, ACCOUNT, camp)["status"] == "sent",
                                    timeout=120)
            env, actor = Env(deps, system.bus.publish), Actor(ACCOUNT)
            report = reports_app.campaign_report(env, actor, camp)
            rows = _ledger(env, actor, camp)
            failed = {r["email"]: r for r in rows if r["status"] == "failed"}
            skipped = {r["email"]: r for r in rows if r["status"] == "skipped"}

            # the CLI, filtered, and its CSV export
            cli_env = {**os.environ, "LUNAMAIL_DATA_DIR": str(data), "LUNAMAIL_SMTP_URL": url}
            cli_failed = json.loads(_cli(cli_env, "campaigns", "recipients", camp, "--status", "failed",
                                         "--json").stdout)["items"]
            csv_path = tmp_path / "ledger.csv"
            _cli(cli_env, "campaigns", "recipients", camp, "--csv", str(csv_path))
            csv_rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))

            # the API, filtered, and its CSV
            with TestClient(create_app(system), raise_server_exceptions=False) as http:
                auth = {"Authorization": f"Bearer {key}"}
                api_failed = http.get(f"/v1/campaigns/{camp}/recipients", params={"status": "failed"},
                                      headers=auth).json()["items"]
                api_csv = list(csv.DictReader(io.StringIO(
                    http.get(f"/v1/campaigns/{camp}/recipients.csv", headers=auth).text)))
                bad = http.get(f"/v1/campaigns/{camp}/recipients", params={"status": "nope"}, headers=auth)
            before = sorted(r for _, rcpts, _ in sink.messages for r in rcpts)

            # the relay recovers; retry --failed (the app layer), then again by CLI and API
            del sink.fail[FULL]
            sink.drop.clear()
            retry = campaigns_app.retry_failed(env, actor, camp)

            def retried() -> bool:
                now = reports_app.campaign_report(env, actor, camp)
                return now["status"] == "sent" and now["sent"] == report["sent"] + 2
            assert system.run_until(retried, timeout=60), reports_app.campaign_report(env, actor, camp)
            again = json.loads(_cli(cli_env, "campaigns", "retry", camp, "--failed", "--json").stdout)
            with TestClient(create_app(system), raise_server_exceptions=False) as http:
                api_again = http.post(f"/v1/campaigns/{camp}/retry-failed", headers=auth)
            system.runtime().run_until_idle(timeout=30)
            after_report = reports_app.campaign_report(env, actor, camp)
            after_rows = _ledger(env, actor, camp)
            after_csv = list(csv.DictReader(io.StringIO("".join(reports_app.recipients_csv(env, actor, camp)))))

    by_status = _counts(rows)
    print(f"\nledger: {by_status}; report sent {report['sent']} failed {report['failed']} skipped "
          f"{report['skipped']}; top reasons {report['failures']['top']}; after retry: {_counts(after_rows)}")
    assert len(rows) == len(aud.expected) + len(SUPPRESSED) == len({r["email"] for r in rows})
    assert by_status == {"sent": len(aud.expected) - 5, "failed": 5, "skipped": 2}
    assert report["sent"] == by_status["sent"] and report["failed"] == by_status["failed"]
    assert report["skipped"] == by_status["skipped"] and report["planned"] == len(aud.expected)
    assert set(skipped) == SUPPRESSED and all(r["reason"] == "suppressed: test" for r in skipped.values())
    assert set(failed) == set(REFUSED) | {FULL, DROPPED}
    for email, (code, text) in REFUSED.items():
        assert failed[email]["code"] == code and failed[email]["enhanced"] == text.split()[0]
        assert text in failed[email]["reply"] and failed[email]["retryable"] is False
    assert failed[FULL]["code"] == 452 and failed[FULL]["enhanced"] == "4.2.2"
    assert failed[FULL]["retryable"] is True and "deferred 2 times" in failed[FULL]["reply"]
    assert failed[DROPPED]["code"] == 451 and failed[DROPPED]["enhanced"] == "4.4.2"
    assert failed[DROPPED]["retryable"] is True and "connection lost" in failed[DROPPED]["reply"]
    assert sorted((r["reason"], r["count"]) for r in report["failures"]["top"]) == [
        ("451 4.4.2", 1), ("452 4.2.2", 1), ("550 5.1.1", 2), ("550 5.7.1", 1)]
    assert sum(r["count"] for r in report["failures"]["top"]) == report["failed"]
    assert sorted(r["email"] for r in cli_failed) == sorted(failed) == sorted(r["email"] for r in api_failed)
    for got in (csv_rows, api_csv):
        assert sorted((r["email"], r["status"]) for r in got) == sorted((r["email"], r["status"]) for r in rows)
        assert {r["email"]: r["retryable"] for r in got if r["status"] == "failed"} == {
            e: str(r["retryable"]) for e, r in failed.items()}
    assert bad.status_code == 422
    # the connection dropped once mid-message: that recipient was sent on a fresh connection
    assert sink.sessions >= 2
    assert before == sorted(r["email"] for r in rows if r["status"] == "sent")

    # retry --failed sent the two retryable failures, once; the permanent ones never
    assert retry.recipients == 2
    assert again == {"campaign": camp, "status": "sent", "recipients": 0}
    assert api_again.status_code == 202 and api_again.json()["recipients"] == 0
    received = sorted(r for _, rcpts, _ in sink.messages for r in rcpts)
    assert received == sorted([*before, FULL, DROPPED]) and len(received) == len(set(received))
    after = _counts(after_rows)
    assert after == {"sent": by_status["sent"] + 2, "failed": 3, "skipped": 2}
    assert (after_report["sent"], after_report["failed"], after_report["skipped"]) == (
        after["sent"], after["failed"], after["skipped"])
    assert sorted((r["reason"], r["count"]) for r in after_report["failures"]["top"]) == [
        ("550 5.1.1", 2), ("550 5.7.1", 1)]
    assert sorted((r["email"], r["status"]) for r in after_csv) == sorted(
        (r["email"], r["status"]) for r in after_rows)
    assert after_report["status"] == "sent" and after_report["progress"] == 1.0
