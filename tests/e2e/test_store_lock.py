"""The SQLite files held by another process for 30 s in the middle of a send.

A second process opens the store and the queue and holds a write transaction on each
(``BEGIN IMMEDIATE``: nobody else may write) for 30 seconds, while a ``lunamail worker``
sends a campaign over real SMTP.  The worker cannot record outcomes meanwhile: it must
stop handing out new recipients and keep the replies of what was already on its
connections until it can commit them, instead of dropping them and sending them again.
The campaign then completes with everyone reached and duplicates within the crash
test's bound for one fault (``GROUP + 64``, see ``test_crash_resume``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.campaigns import api as campaigns
from lunamail.services.delivery.sending import GROUP
from lunamail.services.reports import api as reports
from tests.e2e.campaign_support import (
    ACCOUNT,
    check_messages,
    make_audience,
    make_campaign,
    wait_for,
)

RECIPIENTS = 3_000
HOLD = 30.0

LOCKER = """
import sqlite3, sys, time
conns = []
for path in sys.argv[2:]:
    c = sqlite3.connect(path, isolation_level=None, timeout=60)
    c.execute("BEGIN IMMEDIATE")
    conns.append(c)
print("locked", flush=True)
time.sleep(float(sys.argv[1]))
for c in conns:
    c.execute("COMMIT")
print("released", flush=True)
"""


def test_store_locked_for_30s_mid_send_costs_no_more_than_one_crash(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with CaptureServer("127.0.0.1", 0, delay=0.002) as sink:
        url = f"smtp://127.0.0.1:{sink.port}"
        overrides = {"smtp_url": url, "batch_size": 200, "page_size": 1000, "smtp_connections": 2}
        env = {**os.environ, "LUNAMAIL_DATA_DIR": str(data), "LUNAMAIL_SMTP_URL": url,
               "LUNAMAIL_BATCH_SIZE": "200", "LUNAMAIL_PAGE_SIZE": "1000", "LUNAMAIL_SMTP_CONNECTIONS": "2",
               "LUNAMAIL_WORKERS": "4"}
        with bootstrap_in(data, settings_overrides=overrides) as system:
            aud = make_audience(system, RECIPIENTS, tmp_path)
            camp = make_campaign(system, aud.list_id)
            system.bus.publish([campaigns.send_now(system.deps, ACCOUNT, camp, audience_size=len(aud.expected))])
            worker = subprocess.Popen([sys.executable, "-m", "lunamail.entrypoints.cli.main", "worker"],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            locker: subprocess.Popen[bytes] | None = None
            try:
                assert wait_for(lambda: len(sink.messages) >= 400, 120), "the worker made no progress"
                locker = subprocess.Popen(
                    [sys.executable, "-c", LOCKER, str(HOLD), str(data / "lunamail.db"), str(data / "queue.db")],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                assert locker.stdout is not None and locker.stdout.readline() == b"locked\n"
                at_lock = len(sink.messages)
                released = locker.wait(HOLD + 30) == 0
                at_release = len(sink.messages)
                done = wait_for(lambda: reports.campaign_report(system.deps, ACCOUNT, camp)["status"] == "sent", 120)
            finally:
                if locker is not None and locker.poll() is None:
                    locker.kill()
                    locker.wait(10)
                worker.send_signal(signal.SIGTERM)
                _, err = worker.communicate(timeout=60)
            assert released and done, (reports.campaign_report(system.deps, ACCOUNT, camp), err.decode()[-3000:])
            report = reports.campaign_report(system.deps, ACCOUNT, camp)
            counts, problems = check_messages(system.secrets, camp, aud, sink.messages)

    missing = aud.expected - set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"\nstore lock: {at_lock} messages when the lock was taken, {at_release} when it was released "
          f"({at_release - at_lock} sent while locked); {len(counts)} recipients, {duplicates} duplicates, "
          f"{len(missing)} missing")
    assert problems == []
    assert missing == set()
    assert duplicates <= GROUP + 64, duplicates
    assert report["sent"] == report["planned"] == len(aud.expected)
