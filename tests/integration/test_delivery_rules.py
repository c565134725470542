"""Delivery's rules, driven through the real runtime over a real SQLite data folder.

The mailer is the in-memory one with scripted replies, so each test can say
exactly what the relay answers (4xx, 5xx) and count what was handed over.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunamail.adapters.mailer.memory import MemoryMailer
from lunamail.domain.campaigns import CampaignResumed
from lunamail.domain.delivery import SendBatch
from lunamail.domain.messages import Later
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from lunamail.services.delivery import keys, planning, sending
from lunamail.services.reports import api as reports

ACCOUNT = "default"
HTML = '<p>Hi {{ subscriber.name }}</p><a href="{{ unsubscribe_url }}">unsubscribe</a>'


@pytest.fixture
def mailer() -> MemoryMailer:
    return MemoryMailer()


@pytest.fixture
def system(tmp_path: Path, mailer: MemoryMailer) -> Iterator[System]:
    with bootstrap_in(tmp_path / "data", mailer=mailer,
                      settings_overrides={"batch_size": 10, "page_size": 25, "defer_base_delay": 0.05,
                                          "defer_max_attempts": 3}) as s:
        yield s


def _list(system: System, name: str, emails: list[str]) -> str:
    lst = str(audience.create_list(system.deps, ACCOUNT, name)["id"])
    for e in emails:
        audience.subscribe(system.deps, ACCOUNT, lst, e, name=e.split("@")[0])
    return lst


def _start(system: System, lists: list[str]) -> str:
    camp = campaigns.create_draft(system.deps, ACCOUNT, name="Rules", subject="Hello", from_name="Us",
                                  from_email="us@sender.example.org", html=HTML, lists=lists)
    system.bus.publish([campaigns.send_now(system.deps, ACCOUNT, camp.id)])
    return camp.id


def _report(system: System, camp: str) -> dict[str, object]:
    return reports.campaign_report(system.deps, ACCOUNT, camp)


def _run_until_status(system: System, camp: str, status: str, timeout: float = 60) -> None:
    assert system.run_until(lambda: _report(system, camp)["status"] == status, timeout=timeout), _report(system, camp)


def emails(n: int, prefix: str = "u") -> list[str]:
    return [f"{prefix}{i:03d}@example.net" for i in range(n)]


def test_an_address_in_two_lists_is_sent_once(system: System, mailer: MemoryMailer) -> None:
    a = _list(system, "A", emails(30))
    b = _list(system, "B", emails(40)[10:] + emails(5, "v"))  # 20 shared with A
    camp = _start(system, [a, b])
    _run_until_status(system, camp, "sent")
    handed = Counter(m.rcpt_to for m in mailer.attempts)
    assert set(handed) == set(emails(40)) | set(emails(5, "v"))
    assert max(handed.values()) == 1
    rep = _report(system, camp)
    assert (rep["planned"], rep["sent"], rep["failed"]) == (45, 45, 0)


def test_4xx_is_retried_with_backoff_and_5xx_is_final(system: System, mailer: MemoryMailer) -> None:
    people = emails(12)
    mailer.replies.update({
        people[0]: [(451, "4.3.0 try later"), (250, "ok")],            # deferred once, then sent
        people[1]: (550, "5.1.1 no such user"),                         # final failure
        people[2]: [(451, "4.4.1 mailbox busy")] * 5,                   # deferred until it gives up
    })
    camp = _start(system, [_list(system, "L", people)])
    _run_until_status(system, camp, "sent")
    rep = _report(system, camp)
    assert (rep["planned"], rep["sent"], rep["failed"], rep["deferred"]) == (12, 10, 2, 0)
    tries = Counter(m.rcpt_to for m in mailer.attempts)
    assert tries[people[0]] == 2
    assert tries[people[1]] == 1
    assert tries[people[2]] == 3  # defer_max_attempts
    rec = system.store.get(*keys.record_key(ACCOUNT, camp, people[2]))
    assert rec is not None and rec["status"] == "failed" and "deferred 3 times" in rec["reply"]
    assert campaigns.get(system.deps, ACCOUNT, camp).status == "sent"


def test_slow_down_replies_never_count_towards_the_retry_limit(
    system: System, mailer: MemoryMailer
) -> None:
    """421/454 (SES throttling, sending paused) are about the sender: with a limit of 3
    attempts, five slow-downs and one real deferral still end in a delivery."""
    people = emails(12)
    slow = [(454, "4.7.0 SES Throttling: Maximum sending rate exceeded.")] * 3
    mailer.replies.update({
        people[0]: [*slow, (421, "4.3.2 SES AccountSendingPausedException"), (250, "ok")],
        people[1]: [(454, "4.7.0 throttled"), (451, "4.3.0 busy"), *slow, (250, "ok")],
        people[2]: [(454, "4.7.0 throttled"), *[(451, "4.3.0 busy")] * 5],  # real deferrals count
    })
    camp = _start(system, [_list(system, "L", people)])
    _run_until_status(system, camp, "sent")
    rep = _report(system, camp)
    assert (rep["planned"], rep["sent"], rep["failed"], rep["deferred"]) == (12, 11, 1, 0)
    tries = Counter(m.rcpt_to for m in mailer.attempts)
    assert (tries[people[0]], tries[people[1]], tries[people[2]]) == (5, 6, 4)
    for person, attempts in ((people[0], 0), (people[1], 1)):
        rec = system.store.get(*keys.record_key(ACCOUNT, camp, person))
        assert rec is not None and rec["status"] == "sent"
        assert int(rec.get("attempts", 0)) == attempts
    rec = system.store.get(*keys.record_key(ACCOUNT, camp, people[2]))
    assert rec is not None and rec["status"] == "failed" and "deferred 3 times" in rec["reply"]


def test_batch_ids_of_retries_stay_unique() -> None:
    assert sending.retried("3-0", 1) == "3-0.r1"
    assert sending.retried("3-0.r1", 2) == "3-0.r2"
    assert sending.retried("3-0.r1s", 2) == "3-0.r1s.r2"


def test_a_retried_batch_never_resends_a_recipient_with_an_outcome(system: System, mailer: MemoryMailer) -> None:
    camp = _start(system, [_list(system, "L", emails(10))])
    _run_until_status(system, camp, "sent")
    first = len(mailer.attempts)
    recipients = tuple({"email": e, "name": "", "fields": {}, "list": ""} for e in emails(10))
    out = sending.send_batch(SendBatch(account=ACCOUNT, campaign=camp, batch="0-0", recipients=recipients),
                             system.deps)
    assert len(mailer.attempts) == first
    assert not [m for m in out if isinstance(m, Later)]


def test_pause_parks_batches_and_resume_sends_them(system: System, mailer: MemoryMailer) -> None:
    people = emails(60)
    lst = _list(system, "L", people)
    camp = campaigns.create_draft(system.deps, ACCOUNT, name="P", subject="Hi", from_name="Us",
                                  from_email="us@sender.example.org", html=HTML, lists=[lst])
    started = campaigns.send_now(system.deps, ACCOUNT, camp.id)
    # Pause before any batch runs: delivery records the start, then every batch parks.
    planning.on_campaign_send_started(started, system.deps)
    paused = campaigns.pause(system.deps, ACCOUNT, camp.id, reason="checking a typo")
    system.bus.publish([paused])
    system.runtime().run_until_idle(timeout=30)
    system.bus.publish([started])  # the same start again (at-least-once): still no sends
    system.runtime().run_until_idle(timeout=30)
    assert mailer.attempts == []
    parked = system.store.query(keys.campaign_pk(ACCOUNT, camp.id), prefix="PARK#", limit=100).items
    assert parked and sum(len(p["recipients"]) for p in parked) == 60
    assert _report(system, camp.id)["status"] == "paused"

    resumed = campaigns.resume(system.deps, ACCOUNT, camp.id)
    assert isinstance(resumed, CampaignResumed)
    system.bus.publish([resumed])
    _run_until_status(system, camp.id, "sent")
    assert sorted(m.rcpt_to for m in mailer.attempts) == sorted(people)
    assert system.store.query(keys.campaign_pk(ACCOUNT, camp.id), prefix="PARK#", limit=10).items == []


def test_cancel_stops_what_has_not_been_sent(system: System, mailer: MemoryMailer) -> None:
    lst = _list(system, "L", emails(30))
    camp = campaigns.create_draft(system.deps, ACCOUNT, name="C", subject="Hi", from_name="Us",
                                  from_email="us@sender.example.org", html=HTML, lists=[lst])
    started = campaigns.send_now(system.deps, ACCOUNT, camp.id)
    planning.on_campaign_send_started(started, system.deps)
    system.bus.publish([campaigns.cancel(system.deps, ACCOUNT, camp.id)])
    system.runtime().run_until_idle(timeout=30)
    system.bus.publish([started])
    system.runtime().run_until_idle(timeout=30)
    assert mailer.attempts == []
    assert _report(system, camp.id)["status"] == "cancelled"


def test_test_send_is_marked_and_not_counted(system: System, mailer: MemoryMailer) -> None:
    lst = _list(system, "L", emails(3))
    camp = campaigns.create_draft(system.deps, ACCOUNT, name="T", subject="Hi {{ subscriber.email }}",
                                  from_name="Us", from_email="us@sender.example.org", html=HTML, lists=[lst])
    system.bus.publish([campaigns.test_send(system.deps, ACCOUNT, camp.id, ["me@example.org"])])
    system.runtime().run_until_idle(timeout=30)
    assert [m.rcpt_to for m in mailer.attempts] == ["me@example.org"]
    data = mailer.attempts[0].data
    assert b"Subject: [Test] Hi me@example.org" in data
    assert b"X-Lunamail-Test: 1" in data
    assert b"/o/" not in data  # test sends are never tracked
    assert _report(system, camp.id)["sent"] == 0
    assert campaigns.get(system.deps, ACCOUNT, camp.id).status == "draft"


def test_retry_failed_sends_the_retryable_failures_once_however_often_it_runs(
    system: System, mailer: MemoryMailer
) -> None:
    """``retry --failed`` after a send with a 452, a 4.4.1 and a 550: only the first two go
    again (each once); the retry's start and every page of its walk delivered a second
    time (at-least-once queues) send nobody again and leave the counters as they were."""
    from lunamail.app import campaigns as campaigns_app
    from lunamail.app.base import Actor, Env
    from lunamail.domain.campaigns import CampaignRetryStarted
    from lunamail.domain.delivery import ReopenFailed

    people = emails(30)
    mailer.replies.update({
        people[0]: [(452, "4.2.2 mailbox full")] * 3 + [(250, "ok")],
        people[1]: (550, "5.1.1 no such user"),
        people[2]: [(451, "4.4.1 no answer from host")] * 3 + [(250, "ok")],
    })
    camp = _start(system, [_list(system, "L", people)])
    _run_until_status(system, camp, "sent")
    assert (_report(system, camp)["sent"], _report(system, camp)["failed"]) == (27, 3)
    env, actor = Env(system.deps, system.bus.publish), Actor(ACCOUNT)

    out = campaigns_app.retry_failed(env, actor, camp)
    assert out.recipients == 2 and str(out.campaign.status) == "sending"
    with pytest.raises(Exception, match="retry the failures of a campaign that is sending"):
        campaigns_app.retry_failed(env, actor, camp)  # a second ask while the first runs
    _run_until_status(system, camp, "sent")
    at = campaigns.get(system.deps, ACCOUNT, camp).retried_at
    assert at is not None
    # every message of the retry delivered again
    system.bus.publish([CampaignRetryStarted(account=ACCOUNT, campaign=camp, at=at)]
                       + [ReopenFailed(account=ACCOUNT, campaign=camp, round=1, shard=s)
                          for s in range(keys.RECORD_SHARDS)])
    system.runtime().run_until_idle(timeout=30)
    again = campaigns_app.retry_failed(env, actor, camp)  # only the 550 is left: not retryable

    tries = Counter(m.rcpt_to for m in mailer.attempts)
    assert (tries[people[0]], tries[people[1]], tries[people[2]]) == (4, 1, 4)
    assert max(tries[p] for p in people[3:]) == 1
    rep = _report(system, camp)
    assert (rep["planned"], rep["sent"], rep["failed"], rep["deferred"], rep["status"]) == (30, 29, 1, 0, "sent")
    assert planning.totals(system.deps, ACCOUNT, camp) == {
        "planned": 30, "sent": 29, "failed": 1, "deferred": 0, "skipped": 0, "retryable": 0}
    assert again.recipients == 0 and str(again.campaign.status) == "sent"
    assert campaigns.get(system.deps, ACCOUNT, camp).status == "sent"
