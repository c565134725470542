"""The per-recipient ledger over real SMTP: a relay that refuses chosen addresses with 550,
defers one with 452 until it runs out of attempts, and drops the connection once.

The ledger (CLI and API), its CSV export and the report agree exactly: every planned
recipient has one outcome, the failures carry code, enhanced status and text, and the
report's top reasons add up to its failed count.
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


def test_ledger_csv_and_report_agree(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fail: dict[str, tuple[int, str]] = {**REFUSED, FULL: (452, "4.2.2 mailbox full")}
    with CaptureServer("127.0.0.1", 0, fail=fail, drop_once_after=30) as sink:
        url = f"smtp://127.0.0.1:{sink.port}"
        overrides = {"smtp_url": url, "batch_size": 100, "defer_base_delay": 0.2, "defer_max_attempts": 2}
        with bootstrap_in(data, settings_overrides=overrides) as system:
            deps = system.deps
            acct = accounts.create_account(deps, "Ledger", account_id=ACCOUNT)
            key = accounts.create_api_key(deps, ACCOUNT, "test").secret
            aud = make_audience(system, 300, tmp_path)
            camp = make_campaign(system, aud.list_id)
            system.bus.publish([campaigns.send_now(deps, ACCOUNT, camp)])
            assert system.run_until(lambda: reports.campaign_report(deps, ACCOUNT, camp)["status"] == "sent",
                                    timeout=120)
            env, actor = Env(deps, system.bus.publish), Actor(ACCOUNT)
            report = reports_app.campaign_report(env, actor, camp)
            assert acct is not None

            # the ledger through the app layer, page by page
            rows: list[dict[str, Any]] = []
            cursor = None
            while True:
                page = reports_app.recipients(env, actor, camp, limit=37, cursor=cursor)
                rows += page.items
                cursor = page.next_cursor
                if cursor is None:
                    break
            by_status: dict[str, int] = {}
            for r in rows:
                by_status[r["status"]] = by_status.get(r["status"], 0) + 1
            failed = {r["email"]: r for r in rows if r["status"] == "failed"}

            # the CLI, filtered, and its CSV export
            cli_env = {**os.environ, "LUNAMAIL_DATA_DIR": str(data), "LUNAMAIL_SMTP_URL": url}
            out = subprocess.run([sys.executable, "-m", "lunamail.entrypoints.cli.main", "campaigns", "recipients",
                                  camp, "--status", "failed", "--json"], env=cli_env, capture_output=True, timeout=60)
            assert out.returncode == 0, out.stderr.decode()[-2000:]
            cli_failed = json.loads(out.stdout)["items"]
            csv_path = tmp_path / "ledger.csv"
            out = subprocess.run([sys.executable, "-m", "lunamail.entrypoints.cli.main", "campaigns", "recipients",
                                  camp, "--csv", str(csv_path)], env=cli_env, capture_output=True, timeout=60)
            assert out.returncode == 0, out.stderr.decode()[-2000:]
            csv_rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))

            # the API, filtered, and its CSV
            with TestClient(create_app(system), raise_server_exceptions=False) as http:
                auth = {"Authorization": f"Bearer {key}"}
                api_failed = http.get(f"/v1/campaigns/{camp}/recipients", params={"status": "failed"},
                                      headers=auth).json()["items"]
                api_csv = list(csv.DictReader(io.StringIO(
                    http.get(f"/v1/campaigns/{camp}/recipients.csv", headers=auth).text)))
                bad = http.get(f"/v1/campaigns/{camp}/recipients", params={"status": "nope"}, headers=auth)

    print(f"\nledger: {by_status}; report sent {report['sent']} failed {report['failed']}; "
          f"top reasons {report['failures']['top']}")
    assert len(rows) == len(aud.expected) == len({r["email"] for r in rows})
    assert by_status == {"sent": len(aud.expected) - 4, "failed": 4}
    assert report["sent"] == by_status["sent"] and report["failed"] == by_status["failed"]
    assert set(failed) == set(REFUSED) | {FULL}
    for email, (code, text) in REFUSED.items():
        assert failed[email]["code"] == code and failed[email]["enhanced"] == text.split()[0]
        assert text in failed[email]["reply"] and failed[email]["retryable"] is False
    assert failed[FULL]["code"] == 452 and failed[FULL]["enhanced"] == "4.2.2"
    assert failed[FULL]["retryable"] is True and "deferred 2 times" in failed[FULL]["reply"]
    assert sorted((r["reason"], r["count"]) for r in report["failures"]["top"]) == [
        ("452 4.2.2", 1), ("550 5.1.1", 2), ("550 5.7.1", 1)]
    assert sum(r["count"] for r in report["failures"]["top"]) == report["failed"]
    assert sorted(r["email"] for r in cli_failed) == sorted(failed) == sorted(r["email"] for r in api_failed)
    for got in (csv_rows, api_csv):
        assert sorted((r["email"], r["status"]) for r in got) == sorted((r["email"], r["status"]) for r in rows)
    assert bad.status_code == 422
    # the connection dropped once mid-message: that recipient was sent on a fresh connection
    assert sink.sessions >= 2
    assert sorted(r for _, rcpts, _ in sink.messages for r in rcpts) == sorted(
        r["email"] for r in rows if r["status"] == "sent")
