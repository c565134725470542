"""Reputation guard: rates, thresholds, trips once, re-arming, score (memory store, fake clock)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.config import Settings
from lunamail.domain.accounts import AccountSendingUnlocked, LockAccountSending
from lunamail.domain.campaigns import CampaignResumed
from lunamail.domain.delivery import BatchSent
from lunamail.domain.feedback import Bounced, Complained
from lunamail.domain.guard import (
    AccountGuardTripped,
    CampaignGuardTripped,
    Counts,
    GuardThresholds,
    judge_account,
    judge_campaign,
    reputation_score,
)
from lunamail.domain.messages import Message, from_json
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.services.guard import api, handlers
from lunamail.services.guard.errors import InvalidInput

ACCT = "acct1"
START = 1_900_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def deps(clock: FakeClock) -> Deps:
    return Deps(settings=Settings(), store=MemoryItemStore(clock=clock), blobs=cast(Any, None),
                clock=clock, secrets=cast(Any, None))


def sent(deps: Deps, campaign: str, batch: str, n: int, *, account: str = ACCT) -> list[Message]:
    msg = BatchSent(account=account, campaign=campaign, batch=batch, attempt=0, sent=n,
                    deferred=0, failed=0, at=deps.clock.now())
    return handlers.on_batch_sent(msg, deps)


def bounces(deps: Deps, campaign: str, n: int, *, start: int = 0, kind: str = "hard") -> list[Message]:
    out: list[Message] = []
    for i in range(start, start + n):
        msg = Bounced(account=ACCT, campaign=campaign, email=f"r{i}@example.com",
                      bounce_type=kind, status="5.1.1", at=deps.clock.now())  # type: ignore[arg-type]
        out.extend(handlers.on_bounced(msg, deps))
    return out


def complaints(deps: Deps, campaign: str, n: int, *, start: int = 0) -> list[Message]:
    out: list[Message] = []
    for i in range(start, start + n):
        msg = Complained(account=ACCT, campaign=campaign, email=f"c{i}@example.com", at=deps.clock.now())
        out.extend(handlers.on_complained(msg, deps))
    return out


def of(kind: type[Message], messages: list[Message]) -> list[Any]:
    return [m for m in messages if isinstance(m, kind)]


# ---------------------------------------------------------------- pure rules


def test_judge_needs_the_minimum_sample_and_a_rate_strictly_above_the_limit() -> None:
    t = GuardThresholds()
    assert judge_campaign(Counts(sent=499, bounces=499), t) is None
    assert judge_campaign(Counts(sent=1000, bounces=50), t) is None  # exactly 5% does not pass
    v = judge_campaign(Counts(sent=1000, bounces=51), t)
    assert v is not None and (v.metric, v.rate, v.threshold) == ("bounce", 0.051, 0.05)
    assert "5.10%" in v.reason and "51 hard bounces of 1000 sent" in v.reason
    c = judge_campaign(Counts(sent=1000, complaints=2), t)
    assert c is not None and c.metric == "complaint" and c.threshold == 0.001
    assert judge_account(Counts(sent=1000, bounces=51), t) is None  # account limit is 10%
    a = judge_account(Counts(sent=1000, complaints=6), t)
    assert a is not None and a.metric == "complaint" and "account complaint rate 0.60%" in a.reason


def test_score_deductions_are_proportional_to_the_account_limits() -> None:
    t = GuardThresholds()
    assert reputation_score(Counts(), t) == (100, [])
    score, reasons = reputation_score(Counts(sent=1000, bounces=40), t)
    assert score == 82 and [(r["code"], r["points"]) for r in reasons] == [("bounce_rate", -18)]
    score, reasons = reputation_score(Counts(sent=1000, bounces=40, complaints=2), t)
    # 0.2% complaints against the 0.3% lock limit: 45 * 2/3 = 30 points
    assert score == 52 and [r["points"] for r in reasons] == [-18, -30]
    score, reasons = reputation_score(Counts(sent=1000, bounces=40, complaints=2), t,
                                      locked_reason="too many bounces", recent_pauses=3)
    assert score == 52 - 30 - 20
    assert [r["code"] for r in reasons][-2:] == ["account_locked", "campaigns_paused"]
    assert "too many bounces" in reasons[-2]["message"]
    # a small sample weighs little: 10% bounces on 100 of 500 -> 45 * 1.0 * 0.2 = 9
    assert reputation_score(Counts(sent=100, bounces=10), t)[0] == 91
    # never below zero
    assert reputation_score(Counts(sent=1000, bounces=900, complaints=900), t,
                            locked_reason="x", recent_pauses=9)[0] == 0


def test_thresholds_validation_names_each_bad_field(deps: Deps) -> None:
    with pytest.raises(InvalidInput) as err:
        api.set_thresholds(deps, ACCT, campaign_bounce=0.0, account_complaint=2.0, min_sample=0,
                           window_hours=500)
    assert set(err.value.fields) == {"campaign_bounce", "account_complaint", "min_sample", "window_hours"}
    assert api.get_thresholds(deps, ACCT) == GuardThresholds()  # nothing was stored
    t = api.set_thresholds(deps, ACCT, campaign_bounce=0.02)
    assert t.campaign_bounce == 0.02 and api.get_thresholds(deps, ACCT) == t
    assert api.get_thresholds(deps, "other") == GuardThresholds()  # per account


# ---------------------------------------------------------------- campaign trips


def test_campaign_passing_the_bounce_threshold_trips_once_with_its_numbers(deps: Deps) -> None:
    assert sent(deps, "c1", "0-0", 1000) == []
    assert bounces(deps, "c1", 50) == []  # 5.0% is not above 5%
    out = bounces(deps, "c1", 1, start=50)
    [trip] = of(CampaignGuardTripped, out)
    assert (trip.campaign, trip.metric, trip.sent, trip.bounces, trip.complaints) == ("c1", "bounce", 1000, 51, 0)
    assert trip.bounce_rate == pytest.approx(0.051) and trip.threshold == 0.05
    assert "campaign bounce rate 5.10% passed the 5.00% limit" in trip.reason
    assert of(AccountGuardTripped, out) == []  # 5.1% is fine for the account (10%)
    # more bounces do not trip it again
    assert of(CampaignGuardTripped, bounces(deps, "c1", 20, start=51)) == []
    status = api.campaign_status(deps, ACCT, "c1")
    assert status["tripped"] and status["bounces"] == 71 and "5.10%" in status["reason"]
    assert from_json(trip.to_json()) == trip


def test_below_the_minimum_sample_nothing_trips_even_at_100_percent(deps: Deps) -> None:
    sent(deps, "c1", "0-0", 100)
    out = bounces(deps, "c1", 100)
    assert out == []
    assert api.campaign_status(deps, ACCT, "c1")["bounce_rate"] == 1.0


def test_complaint_threshold(deps: Deps) -> None:
    sent(deps, "c1", "0-0", 1000)
    assert complaints(deps, "c1", 1) == []  # 0.1% is the limit, not above it
    [trip] = of(CampaignGuardTripped, complaints(deps, "c1", 1, start=1))
    assert (trip.metric, trip.complaints, trip.threshold) == ("complaint", 2, 0.001)
    assert trip.complaint_rate == pytest.approx(0.002)


def test_same_complaint_or_hard_bounce_twice_counts_once(deps: Deps) -> None:
    sent(deps, "c1", "0-0", 1000)
    complaints(deps, "c1", 1)
    assert complaints(deps, "c1", 1) == []  # the same recipient again
    bounces(deps, "c1", 3)
    bounces(deps, "c1", 3)
    bounces(deps, "c1", 2, kind="soft")
    s = api.campaign_status(deps, ACCT, "c1")
    assert (s["complaints"], s["bounces"], s["soft_bounces"]) == (1, 3, 2)


def test_duplicate_batch_sent_is_counted_once(deps: Deps) -> None:
    sent(deps, "c1", "0-0", 400)
    sent(deps, "c1", "0-0", 400)  # redelivered
    sent(deps, "c1", "0-1", 100)
    assert api.campaign_status(deps, ACCT, "c1")["sent"] == 500
    assert api.score(deps, ACCT)["sent"] == 500


def test_redelivered_tripping_message_emits_the_same_trip_again(deps: Deps) -> None:
    sent(deps, "c1", "0-0", 500)
    first = bounces(deps, "c1", 26)
    assert len(of(CampaignGuardTripped, first)) == 1
    again = bounces(deps, "c1", 1, start=25)  # the message that tripped it, redelivered
    assert of(CampaignGuardTripped, again) == of(CampaignGuardTripped, first)
    assert bounces(deps, "c1", 1, start=24) == []  # an earlier one: nothing


def test_resume_after_a_guard_pause_watches_a_fresh_sample(deps: Deps) -> None:
    sent(deps, "c1", "0-0", 500)
    assert of(CampaignGuardTripped, bounces(deps, "c1", 30))
    handlers.on_campaign_resumed(CampaignResumed(account=ACCT, campaign="c1"), deps)
    s = api.campaign_status(deps, ACCT, "c1")
    assert (s["tripped"], s["sent"], s["bounces"]) == (False, 0, 0)
    assert bounces(deps, "c1", 5, start=100) == []  # sample too small after the resume
    sent(deps, "c1", "1-0", 500)
    [trip] = of(CampaignGuardTripped, bounces(deps, "c1", 21, start=200))
    assert (trip.sent, trip.bounces) == (500, 26)


# ---------------------------------------------------------------- account trips


def test_account_lock_at_the_account_thresholds_is_asked_once(deps: Deps) -> None:
    api.set_thresholds(deps, ACCT, campaign_bounce=0.9)  # only the account rule in play
    sent(deps, "c1", "0-0", 300)
    sent(deps, "c2", "0-0", 300)
    assert bounces(deps, "c1", 60) == []  # 60 / 600 = 10%: not above
    out = bounces(deps, "c2", 1, start=1000)
    [event] = of(AccountGuardTripped, out)
    [lock] = of(LockAccountSending, out)
    assert (event.metric, event.sent, event.bounces, event.window_hours) == ("bounce", 600, 61, 24)
    assert lock.account == ACCT and lock.reason == event.reason and "over the last 24 h" in lock.reason
    assert lock.numbers["bounces"] == 61 and lock.numbers["threshold"] == 0.10
    later = bounces(deps, "c2", 30, start=2000) + complaints(deps, "c1", 10)
    assert of(LockAccountSending, later) == [] and of(AccountGuardTripped, later) == []
    doc = api.score(deps, ACCT)
    assert doc["locked"] and any(r["code"] == "account_locked" for r in doc["reasons"])
    assert [a["kind"] for a in doc["recent_actions"]] == ["account_locked"]


def test_unlock_rearms_the_account_on_what_follows(deps: Deps, clock: FakeClock) -> None:
    api.set_thresholds(deps, ACCT, campaign_bounce=0.9)
    sent(deps, "c1", "0-0", 500)
    assert of(LockAccountSending, bounces(deps, "c1", 60))
    clock.advance(60)
    handlers.on_account_sending_unlocked(AccountSendingUnlocked(account=ACCT, at=clock.now()), deps)
    doc = api.score(deps, ACCT)
    assert (doc["locked"], doc["sent"], doc["bounces"]) == (False, 0, 0)
    assert bounces(deps, "c1", 10, start=500) == []  # no new sample yet
    sent(deps, "c1", "1-0", 500)
    assert of(LockAccountSending, bounces(deps, "c1", 41, start=600))  # 51 / 500 > 10%


def test_account_window_forgets_old_hours(deps: Deps, clock: FakeClock) -> None:
    sent(deps, "c1", "0-0", 1000)
    bounces(deps, "c1", 40)
    assert api.score(deps, ACCT)["bounces"] == 40
    clock.advance(25 * 3600)
    sent(deps, "c2", "0-0", 200)
    doc = api.score(deps, ACCT)
    assert (doc["sent"], doc["bounces"], doc["score"]) == (200, 0, 100)
    api.set_thresholds(deps, ACCT, window_hours=48)
    assert api.score(deps, ACCT)["sent"] == 1200


def test_score_counts_recent_campaign_trips(deps: Deps) -> None:
    for c in ("c1", "c2"):
        sent(deps, c, "0-0", 500)
        complaints(deps, c, 1)
    doc = api.score(deps, ACCT)
    # complaints 2/1000 = 0.2% of the 0.3% limit -> 30 points; two campaigns tripped -> 20
    assert doc["score"] == 100 - 30 - 20
    assert {r["code"] for r in doc["reasons"]} == {"complaint_rate", "campaigns_paused"}
    assert doc["complaint_rate"] == pytest.approx(0.002) and doc["window_hours"] == 24


# ---------------------------------------------------------------- complaints and refusing domains


def test_complaints_pause_the_campaign_at_0_1_and_lock_the_account_at_0_3_percent(deps: Deps) -> None:
    t = GuardThresholds()
    assert (t.campaign_complaint, t.account_complaint) == (0.001, 0.003)
    sent(deps, "c1", "0-0", 1000)
    assert complaints(deps, "c1", 1) == []  # 0.1% does not pass 0.1%
    tripped = complaints(deps, "c1", 1, start=1)  # 0.2%: the campaign pauses, the account stays open
    assert [type(m) for m in tripped] == [CampaignGuardTripped]
    assert complaints(deps, "c1", 1, start=2) == []  # 0.3%: at the lock limit, not past it
    locked = complaints(deps, "c1", 1, start=3)
    assert [type(m) for m in locked] == [AccountGuardTripped, LockAccountSending]
    assert "0.40%" in locked[0].reason and "0.30%" in locked[0].reason


def sender_refusals(deps: Deps, campaign: str, n: int, domain: str, status: str = "5.7.26", *,
                    start: int = 0) -> list[Message]:
    out: list[Message] = []
    for i in range(start, start + n):
        msg = Bounced(account=ACCT, campaign=campaign, email=f"p{i}@{domain}", bounce_type="sender",
                      status=status, at=deps.clock.now())
        out.extend(handlers.on_bounced(msg, deps))
    return out


def test_one_domain_refusing_the_sender_pauses_the_campaign_with_that_reason(deps: Deps) -> None:
    sent(deps, "c1", "0-0", 600)
    assert sender_refusals(deps, "c1", 19, "gmail.com") == []  # 19 < 20 refusals
    assert sender_refusals(deps, "c1", 15, "yahoo.com", "4.7.0") == []
    [trip] = sender_refusals(deps, "c1", 1, "gmail.com", start=19)
    assert isinstance(trip, CampaignGuardTripped)
    assert (trip.metric, trip.domain, trip.bounces) == ("domain", "gmail.com", 0)
    assert trip.reason.startswith("gmail.com rejected 20 of 600 messages (3.33%): 5.7.26 DMARC")
    assert "no recipient was suppressed" in trip.reason
    # the same recipient's refusal again is not a new one; a tripped campaign trips once
    assert sender_refusals(deps, "c1", 25, "gmail.com", start=10) == []


def test_refusals_at_send_time_count_per_domain_and_hard_failures_do_not(deps: Deps) -> None:
    failures = tuple(
        [{"email": f"a{i}@gmail.com", "code": 550, "reply": "550 5.7.26 Unauthenticated email is not accepted "
          "due to domain's DMARC policy"} for i in range(12)]
        + [{"email": f"b{i}@gmail.com", "code": 550, "reply": "550 5.1.1 user unknown"} for i in range(30)]
    )
    msg = BatchSent(account=ACCT, campaign="c2", batch="0-0", attempt=0, sent=100, deferred=0,
                    failed=len(failures), at=deps.clock.now(), failures=failures)
    assert handlers.on_batch_sent(msg, deps) == []  # 12 refusals: under the 20 needed
    more = BatchSent(account=ACCT, campaign="c2", batch="0-1", attempt=0, sent=0, deferred=0,
                     failed=8, at=deps.clock.now(), failures=failures[:8])
    [trip] = handlers.on_batch_sent(more, deps)
    assert isinstance(trip, CampaignGuardTripped) and trip.domain == "gmail.com"
    assert "gmail.com rejected 20 of 150 messages" in trip.reason


def test_resuming_after_a_domain_trip_starts_its_count_again(deps: Deps) -> None:
    sent(deps, "c1", "0-0", 100)
    assert len(sender_refusals(deps, "c1", 20, "gmail.com")) == 1
    handlers.on_campaign_resumed(CampaignResumed(account=ACCT, campaign="c1"), deps)
    out: list[Message] = []
    for i in range(20, 39):
        out += handlers.on_bounced(Bounced(account=ACCT, campaign="c1", email=f"p{i}@gmail.com",
                                           bounce_type="sender", status="5.7.26", at=deps.clock.now()), deps)
    assert out == []  # 19 new refusals since the resume
