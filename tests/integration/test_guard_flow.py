"""The guard end to end on a real SQLite data folder: events go through the bus and the
local runtime, the guard pauses a campaign, locks an account, and an unlock lets it send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lunamail.domain.accounts import (
    AccountSendingLocked,
    AccountSendingUnlocked,
    LockAccountSending,
)
from lunamail.domain.campaign_model import CampaignStatus
from lunamail.domain.campaigns import CampaignResumed
from lunamail.domain.delivery import BatchSent
from lunamail.domain.feedback import Bounced, Complained
from lunamail.domain.guard import CampaignGuardTripped, PauseAccountCampaigns
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.runtime.routing import Router
from lunamail.services.accounts import api as accounts
from lunamail.services.accounts.handlers import handle_lock_account_sending
from lunamail.services.campaigns import api as campaigns
from lunamail.services.campaigns import reactions
from lunamail.services.campaigns.errors import PreSendCheckFailed
from lunamail.services.guard import api as guard
from lunamail.services.guard import handlers as guard_handlers

ACCT = "acme"
HTML = '<p>Hi</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
WAIT = 60.0  # a safety net only: each run returns as soon as the state is reached

GUARD_ROUTER = Router({
    BatchSent: (guard_handlers.on_batch_sent,),
    Bounced: (guard_handlers.on_bounced,),
    Complained: (guard_handlers.on_complained,),
    CampaignGuardTripped: (reactions.on_campaign_guard_tripped,),
    LockAccountSending: (handle_lock_account_sending,),
    AccountSendingLocked: (reactions.on_account_sending_locked,),
    PauseAccountCampaigns: (reactions.handle_pause_account_campaigns,),
    AccountSendingUnlocked: (reactions.on_account_sending_unlocked, guard_handlers.on_account_sending_unlocked),
    CampaignResumed: (guard_handlers.on_campaign_resumed,),
})  # fmt: skip


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    with bootstrap_in(tmp_path / "data", router=GUARD_ROUTER) as s:
        accounts.create_account(s.deps, "Acme", account_id=ACCT)
        yield s


def start_campaign(system: System, name: str) -> str:
    c = campaigns.create_draft(system.deps, ACCT, name=name, subject="Hello",
                               from_email="news@acme.example", html=HTML, lists=["l1"])
    system.bus.publish(campaigns.send_now(system.deps, ACCT, c.id))  # nobody consumes it here
    return c.id


def batch(system: System, campaign: str, n: int) -> BatchSent:
    return BatchSent(account=ACCT, campaign=campaign, batch="0-0", attempt=0, sent=n, deferred=0,
                     failed=0, at=system.clock.now())


def status(system: System, campaign: str) -> CampaignStatus:
    return campaigns.get(system.deps, ACCT, campaign).status


def test_bounces_through_the_bus_pause_the_campaign(system: System) -> None:
    cid = start_campaign(system, "spring")
    now = system.clock.now()
    system.bus.publish([batch(system, cid, 600), batch(system, cid, 600)])  # the second is a duplicate
    system.bus.publish([
        Bounced(account=ACCT, campaign=cid, email=f"r{i}@example.com", bounce_type="hard", at=now)
        for i in range(40)
    ])  # fmt: skip
    assert system.run_until(lambda: status(system, cid) == CampaignStatus.PAUSED, timeout=WAIT)
    c = campaigns.get(system.deps, ACCT, cid)
    assert "campaign bounce rate" in c.reason and "of 600 sent" in c.reason
    numbers = guard.campaign_status(system.deps, ACCT, cid)
    assert numbers["tripped"] and numbers["sent"] == 600
    assert accounts.get_account(system.deps, ACCT).sending == "active"  # 40/600 < 10%


def test_account_lock_refuses_sends_until_unlocked(system: System) -> None:
    guard.set_thresholds(system.deps, ACCT, campaign_complaint=0.5, min_sample=100)
    cid = start_campaign(system, "summer")
    waiting = campaigns.create_draft(system.deps, ACCT, name="autumn", subject="Hi",
                                     from_email="news@acme.example", html=HTML, lists=["l1"])
    now = system.clock.now()
    system.bus.publish(batch(system, cid, 200))
    system.bus.publish([
        Complained(account=ACCT, campaign=cid, email=f"c{i}@example.com", at=now) for i in range(3)
    ])  # fmt: skip
    assert system.run_until(lambda: status(system, cid) == CampaignStatus.PAUSED, timeout=WAIT)
    assert accounts.get_account(system.deps, ACCT).sending == "locked"
    with pytest.raises(PreSendCheckFailed) as err:
        campaigns.send_now(system.deps, ACCT, waiting.id)
    [reason] = err.value.reasons
    assert reason.startswith("sending is locked for this account: account complaint rate")
    assert guard.score(system.deps, ACCT)["locked"]

    # what `lunamail accounts unlock` does: unlock, then publish the event
    system.bus.publish(accounts.unlock_sending(system.deps, ACCT))

    def can_send() -> bool:
        try:
            campaigns.send_now(system.deps, ACCT, waiting.id)
        except PreSendCheckFailed:
            return False
        return True

    assert system.run_until(can_send, timeout=WAIT)
    assert status(system, waiting.id) == CampaignStatus.SENDING
    assert status(system, cid) == CampaignStatus.PAUSED  # stays paused until a person resumes it
    assert system.run_until(lambda: not guard.score(system.deps, ACCT)["locked"], timeout=WAIT)
