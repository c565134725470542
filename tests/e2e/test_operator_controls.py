"""Pause, cancel and a guard trip stop a running send at once, on every worker process.

Two ``lunamail worker`` processes send over real SMTP to a slow local sink (each reply
to a message's data comes 20 ms late), in batches of 250, so every batch is mid-way
when the operator acts.  Once ``campaigns pause``/``cancel`` has returned, only what a
connection had already started may still arrive: per connection the message whose data
went out and the one whose commands did (pipelining depth 2).  The tests print the
number and hold it to workers x connections x 2.  ``resume`` sends the rest: everybody
gets exactly one message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.domain.feedback import Complained
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.services.accounts import api as accounts
from lunamail.services.campaigns import api as campaigns
from lunamail.services.delivery import control
from lunamail.services.guard import api as guard
from lunamail.services.reports import api as reports
from tests.e2e.campaign_support import (
    ACCOUNT,
    Audience,
    check_messages,
    make_audience,
    make_campaign,
)

RECIPIENTS = 1_500
WORKERS = 2
CONNECTIONS = 2
DEPTH = 2  # messages one connection may hold: the one whose data is out, the next one's commands
BOUND = WORKERS * CONNECTIONS * DEPTH
SLOW = 0.02


@dataclass
class Send:
    system: System
    sink: CaptureServer
    env: dict[str, str]
    audience: Audience
    campaign: str

    def cli(self, *args: str) -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-m", "lunamail.entrypoints.cli.main", "campaigns", *args, self.campaign, "--json"],
            env=self.env, capture_output=True, timeout=60,
        )
        assert out.returncode == 0, (out.stdout + out.stderr).decode()[-2000:]
        doc: dict[str, object] = json.loads(out.stdout)
        return doc

    def status(self) -> str:
        return str(reports.campaign_report(self.system.deps, ACCOUNT, self.campaign)["status"])

    def quiet_count(self, quiet: float = 1.5, limit: float = 30.0) -> int:
        """The sink's count once nothing more arrived for ``quiet`` seconds."""
        last, since, deadline = self.sink.count, time.monotonic(), time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self.sink.count != last:
                last, since = self.sink.count, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return last

    def check_once_each(self) -> None:
        counts, problems = check_messages(self.system.secrets, self.campaign, self.audience, self.sink.messages)
        duplicates = sum(n - 1 for n in counts.values())
        missing = self.audience.expected - set(counts)
        print(f"  {len(counts)} recipients, {duplicates} duplicates, {len(missing)} missing")
        assert problems == []
        assert duplicates == 0
        assert missing == set()


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@contextmanager
def running_send(tmp_path: Path) -> Iterator[Send]:
    data = tmp_path / "data"
    with CaptureServer("127.0.0.1", 0, delay=SLOW) as sink:
        url = f"smtp://127.0.0.1:{sink.port}"
        env = {**os.environ, "LUNAMAIL_DATA_DIR": str(data), "LUNAMAIL_SMTP_URL": url,
               "LUNAMAIL_BATCH_SIZE": "250", "LUNAMAIL_SMTP_CONNECTIONS": str(CONNECTIONS),
               "LUNAMAIL_WORKERS": "4"}
        with bootstrap_in(data, settings_overrides={"smtp_url": url, "batch_size": 250}) as system:
            accounts.create_account(system.deps, "Operator test", account_id=ACCOUNT)
            aud = make_audience(system, RECIPIENTS, tmp_path)
            camp = make_campaign(system, aud.list_id)
            guard.set_thresholds(system.deps, ACCOUNT, campaign_complaint=0.005, account_complaint=0.5,
                                 min_sample=100)
            workers = [
                subprocess.Popen([sys.executable, "-m", "lunamail.entrypoints.cli.main", "worker"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(WORKERS)
            ]
            try:
                system.bus.publish([campaigns.send_now(system.deps, ACCOUNT, camp)])
                yield Send(system, sink, env, aud, camp)
            finally:
                for w in workers:
                    w.terminate()
                for w in workers:
                    w.wait(60)


def test_pause_stops_in_flight_and_resume_sends_the_rest_once(tmp_path: Path) -> None:
    with running_send(tmp_path) as send:
        assert _wait(lambda: send.sink.count >= 300, 120), "the send did not start"
        send.cli("pause")
        at_return = send.sink.count
        after = send.quiet_count()
        print(f"\npause: {at_return} arrived when it returned, {after - at_return} in flight after it "
              f"(bound {BOUND} = {WORKERS} workers x {CONNECTIONS} connections x {DEPTH})")
        assert after - at_return <= BOUND
        assert after < len(send.audience.expected)  # stopped before the end
        send.cli("resume")
        assert _wait(lambda: send.status() == "sent", 120), send.status()
        send.check_once_each()


def test_cancel_stops_in_flight_and_nothing_more_goes_out(tmp_path: Path) -> None:
    with running_send(tmp_path) as send:
        assert _wait(lambda: send.sink.count >= 300, 120), "the send did not start"
        doc = send.cli("cancel")
        at_return = send.sink.count
        after = send.quiet_count(quiet=3.0)
        print(f"\ncancel: {at_return} arrived when it returned, {after - at_return} in flight after it "
              f"(bound {BOUND})")
        assert doc["status"] == "cancelled"
        assert after - at_return <= BOUND
        assert after < len(send.audience.expected)  # stopped before the end
        assert _wait(lambda: send.status() == "cancelled", 30)
        counts, _ = check_messages(send.system.secrets, send.campaign, send.audience, send.sink.messages)
        assert max(counts.values()) == 1


def test_guard_trip_stops_in_flight_and_resume_sends_the_rest_once(tmp_path: Path) -> None:
    with running_send(tmp_path) as send:
        deps = send.system.deps
        assert _wait(lambda: send.sink.count >= 300, 120), "the send did not start"
        now = deps.clock.now()
        sent_to = sorted({r for _, rcpts, _ in list(send.sink.messages) for r in rcpts})[:5]
        published = time.monotonic()
        send.system.bus.publish([Complained(account=ACCOUNT, campaign=send.campaign, email=e, at=now)
                                 for e in sent_to])
        assert _wait(lambda: control.read(deps, ACCOUNT, send.campaign) == "paused", 60)
        tripped = time.monotonic()
        item = deps.store.get(f"A#{ACCOUNT}#D#{send.campaign}", "CTRL")
        assert item is not None and str(item["reason"]).startswith("paused by the reputation guard")
        time.sleep(control.SETTLE)
        at_stop = send.sink.count
        after = send.quiet_count()
        print(f"\nguard trip: recorded {tripped - published:.2f}s after the complaints were published; "
              f"{after - at_stop} in flight after it (bound {BOUND})")
        assert after - at_stop <= BOUND
        assert after < len(send.audience.expected)  # stopped before the end
        assert _wait(lambda: campaigns.get(deps, ACCOUNT, send.campaign).status == "paused", 30)
        send.cli("resume")
        assert _wait(lambda: send.status() == "sent", 120), send.status()
        send.check_once_each()
