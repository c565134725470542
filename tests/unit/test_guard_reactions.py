"""The campaigns service's reactions to the guard and to the account's sending lock, with
the guard, campaigns and accounts handlers chained in-process (memory store, fake clock)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest

from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.config import Settings
from lunamail.domain.accounts import (
    AccountSendingLocked,
    AccountSendingUnlocked,
    LockAccountSending,
)
from lunamail.domain.campaign_model import Campaign, CampaignStatus
from lunamail.domain.campaigns import CampaignPaused, CampaignResumed, SendCampaign
from lunamail.domain.delivery import BatchSent
from lunamail.domain.feedback import Bounced
from lunamail.domain.guard import CampaignGuardTripped, PauseAccountCampaigns
from lunamail.domain.messages import Later, Message
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.services.accounts import api as accounts
from lunamail.services.accounts.handlers import handle_lock_account_sending
from lunamail.services.campaigns import api as campaigns
from lunamail.services.campaigns import handlers as campaign_handlers
from lunamail.services.campaigns import reactions
from lunamail.services.campaigns.errors import PreSendCheckFailed
from lunamail.services.guard import api as guard
from lunamail.services.guard import handlers as guard_handlers

ACCT = "acct1"
HTML = '<p>Hi</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
START = 1_900_000_000.0

Handler = Callable[[Any, Deps], Sequence[Message | Later] | None]

ROUTES: dict[type[Message], tuple[Handler, ...]] = {
    BatchSent: (guard_handlers.on_batch_sent,),
    Bounced: (guard_handlers.on_bounced,),
    CampaignGuardTripped: (reactions.on_campaign_guard_tripped,),
    LockAccountSending: (handle_lock_account_sending,),
    AccountSendingLocked: (reactions.on_account_sending_locked,),
    PauseAccountCampaigns: (reactions.handle_pause_account_campaigns,),
    AccountSendingUnlocked: (reactions.on_account_sending_unlocked, guard_handlers.on_account_sending_unlocked),
    CampaignResumed: (guard_handlers.on_campaign_resumed,),
}


class Flow:
    """Runs messages through the handlers of ROUTES until nothing is left; keeps a log."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.log: list[Message] = []

    def publish(self, *messages: Message) -> None:
        pending = list(messages)
        while pending:
            msg = pending.pop(0)
            self.log.append(msg)
            for handler in ROUTES.get(type(msg), ()):
                for out in handler(msg, self.deps) or ():
                    pending.append(out.message if isinstance(out, Later) else out)

    def of(self, kind: type[Message]) -> list[Any]:
        return [m for m in self.log if isinstance(m, kind)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def deps(clock: FakeClock) -> Deps:
    d = Deps(settings=Settings(), store=MemoryItemStore(clock=clock), blobs=cast(Any, None),
             clock=clock, secrets=cast(Any, None))
    accounts.create_account(d, "Acme", account_id=ACCT)
    return d


@pytest.fixture
def flow(deps: Deps) -> Flow:
    return Flow(deps)


def draft(deps: Deps, name: str = "News") -> Campaign:
    return campaigns.create_draft(deps, ACCT, name=name, subject="Hello", from_email="news@luna.example",
                                  html=HTML, lists=["l1"])


def sending(deps: Deps, name: str = "News") -> Campaign:
    c = draft(deps, name)
    campaigns.send_now(deps, ACCT, c.id)
    return campaigns.get(deps, ACCT, c.id)


def batch(deps: Deps, campaign: str, n: int, seq: int = 0) -> BatchSent:
    return BatchSent(account=ACCT, campaign=campaign, batch=f"{seq}-0", attempt=0, sent=n, deferred=0,
                     failed=0, at=deps.clock.now())


def hard(deps: Deps, campaign: str, i: int) -> Bounced:
    return Bounced(account=ACCT, campaign=campaign, email=f"r{i}@example.com", bounce_type="hard",
                   at=deps.clock.now())


def test_bounce_threshold_pauses_the_sending_campaign_with_reason_and_numbers(deps: Deps, flow: Flow) -> None:
    c = sending(deps)
    flow.publish(batch(deps, c.id, 1000), *(hard(deps, c.id, i) for i in range(60)))
    [trip] = flow.of(CampaignGuardTripped)
    assert (trip.sent, trip.bounces) == (1000, 51)
    [paused] = flow.of(CampaignPaused)
    assert paused.campaign == c.id and "bounce rate 5.10% passed the 5.00% limit" in paused.reason
    after = campaigns.get(deps, ACCT, c.id)
    assert after.status == CampaignStatus.PAUSED and after.reason == paused.reason
    # the guard never resumes: only a person does
    flow.publish(*(hard(deps, c.id, i) for i in range(100, 120)))
    assert campaigns.get(deps, ACCT, c.id).status == CampaignStatus.PAUSED
    flow.publish(campaigns.resume(deps, ACCT, c.id))
    assert campaigns.get(deps, ACCT, c.id).status == CampaignStatus.SENDING
    assert guard.campaign_status(deps, ACCT, c.id)["tripped"] is False


def test_trip_of_a_campaign_that_is_not_sending_changes_nothing(deps: Deps) -> None:
    c = draft(deps)
    trip = CampaignGuardTripped(account=ACCT, campaign=c.id, reason="r", metric="bounce", bounce_rate=0.2,
                                complaint_rate=0.0, sent=500, bounces=100, complaints=0, threshold=0.05)
    assert reactions.on_campaign_guard_tripped(trip, deps) == []
    assert campaigns.get(deps, ACCT, c.id).status == CampaignStatus.DRAFT
    gone = CampaignGuardTripped(**{**trip.to_dict()["body"], "campaign": "nope"})
    assert reactions.on_campaign_guard_tripped(gone, deps) == []


def test_redelivered_trip_reemits_the_pause_for_the_same_reason(deps: Deps) -> None:
    c = sending(deps)
    trip = CampaignGuardTripped(account=ACCT, campaign=c.id, reason="too many", metric="bounce",
                                bounce_rate=0.2, complaint_rate=0.0, sent=500, bounces=100,
                                complaints=0, threshold=0.05)
    first = reactions.on_campaign_guard_tripped(trip, deps)
    assert first == reactions.on_campaign_guard_tripped(trip, deps) and len(first) == 1
    assert campaigns.get(deps, ACCT, c.id).version == c.version + 1  # paused once


def test_account_lock_pauses_sending_campaigns_and_refuses_new_sends(deps: Deps, flow: Flow) -> None:
    guard.set_thresholds(deps, ACCT, campaign_bounce=0.9)  # let the account rule act first
    c1, c2 = sending(deps, "one"), sending(deps, "two")
    waiting = draft(deps, "three")
    flow.publish(batch(deps, c1.id, 500), *(hard(deps, c1.id, i) for i in range(80)))
    assert len(flow.of(LockAccountSending)) == 1  # once, though 29 more bounces followed
    [locked] = flow.of(AccountSendingLocked)
    assert "account bounce rate 10.20% passed the 10.00% limit" in locked.reason
    assert accounts.get_account(deps, ACCT).sending == "locked"
    assert {p.campaign for p in flow.of(CampaignPaused)} == {c1.id, c2.id}
    assert all(p.reason.startswith("sending is locked for this account: ") for p in flow.of(CampaignPaused))
    with pytest.raises(PreSendCheckFailed) as err:
        campaigns.send_now(deps, ACCT, waiting.id)
    assert err.value.reasons == [f"sending is locked for this account: {locked.reason}"]
    with pytest.raises(PreSendCheckFailed, match="sending is locked"):
        campaigns.schedule(deps, ACCT, waiting.id, "2030-06-01T09:00:00+00:00")
    with pytest.raises(PreSendCheckFailed, match="sending is locked"):
        campaigns.resume(deps, ACCT, c1.id)
    # the scheduled-send handler does not start it either
    assert campaign_handlers.handle_send_campaign(SendCampaign(account=ACCT, campaign=waiting.id), deps) == []
    assert campaigns.get(deps, ACCT, waiting.id).status != CampaignStatus.SENDING

    flow.publish(*accounts.unlock_sending(deps, ACCT))
    started = campaigns.send_now(deps, ACCT, waiting.id)
    assert started.campaign == waiting.id
    assert campaigns.get(deps, ACCT, c1.id).status == CampaignStatus.PAUSED  # a person resumes it
    flow.publish(campaigns.resume(deps, ACCT, c1.id))
    assert campaigns.get(deps, ACCT, c1.id).status == CampaignStatus.SENDING
    # the guard watches a fresh sample after the unlock: old numbers do not lock again
    flow.publish(hard(deps, c1.id, 500))
    assert len(flow.of(LockAccountSending)) == 1


def test_lock_pauses_campaigns_page_by_page(deps: Deps, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reactions, "PAUSE_PAGE", 2)
    ids = {sending(deps, f"c{i}").id for i in range(5)}
    out = reactions.on_account_sending_locked(
        AccountSendingLocked(account=ACCT, reason="bounces", at=START), deps)
    assert len([m for m in out if isinstance(m, CampaignPaused)]) == 2
    paused: set[str] = {m.campaign for m in out if isinstance(m, CampaignPaused)}
    runs = 1
    nxt = [m for m in out if isinstance(m, PauseAccountCampaigns)]
    while nxt:
        runs += 1
        out = reactions.handle_pause_account_campaigns(nxt[0], deps)
        assert len([m for m in out if isinstance(m, CampaignPaused)]) <= 2
        paused |= {m.campaign for m in out if isinstance(m, CampaignPaused)}
        nxt = [m for m in out if isinstance(m, PauseAccountCampaigns)]
    assert paused == ids and runs >= 3


def test_projection_ignores_a_lock_older_than_the_unlock(deps: Deps) -> None:
    c = sending(deps)
    reactions.on_account_sending_unlocked(AccountSendingUnlocked(account=ACCT, at=START + 10), deps)
    out = reactions.on_account_sending_locked(AccountSendingLocked(account=ACCT, reason="old", at=START), deps)
    assert out == [] and campaigns.get(deps, ACCT, c.id).status == CampaignStatus.SENDING
    campaigns.send_now(deps, ACCT, draft(deps).id)  # not refused
    # a pending page command after an unlock does nothing
    assert reactions.handle_pause_account_campaigns(
        PauseAccountCampaigns(account=ACCT, reason="old", cursor=None), deps) == []
