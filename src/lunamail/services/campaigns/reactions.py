"""How the campaigns service reacts to the reputation guard and to the account's sending
lock.  Each handler is safe to run twice.

The guard pauses; only a person resumes (the ordinary resume API).  The account's sending
state is kept here as a projection of the accounts service's events, because this
service never reads another service's items; the send, schedule and resume calls refuse
while it says "locked".
"""

from __future__ import annotations

from lunamail.domain.accounts import AccountSendingLocked, AccountSendingUnlocked
from lunamail.domain.campaign_model import Action, Campaign, CampaignStatus, can
from lunamail.domain.campaigns import CampaignPaused
from lunamail.domain.guard import CampaignGuardTripped, PauseAccountCampaigns
from lunamail.domain.messages import Message
from lunamail.ports.deps import Deps

from . import store
from .api import list_campaigns
from .checks import lock_problem
from .errors import NotFound

#: Sending campaigns paused per handler run when an account is locked.
PAUSE_PAGE = 25


class _Skip(Exception):
    """The campaign is not in a state this reaction applies to."""


def _pause(deps: Deps, account: str, campaign: str, reason: str) -> CampaignPaused | None:
    """Pause a sending campaign with ``reason``; the event to publish, or None when there is
    nothing to announce.  A campaign already paused for this very reason gets its event
    again (we may have crashed between the write and the publish)."""

    def step(c: Campaign) -> Campaign:
        if not can(c.status, Action.PAUSE):
            raise _Skip
        return c.transition(Action.PAUSE, deps.clock.now(), reason=reason)

    try:
        store.change(deps, account, campaign, step)
    except (_Skip, NotFound):
        current = store.find(deps, account, campaign)
        if current is None or current.status != CampaignStatus.PAUSED or current.reason != reason:
            return None
    return CampaignPaused(account=account, campaign=campaign, reason=reason, at=deps.clock.now())


def on_campaign_guard_tripped(msg: CampaignGuardTripped, deps: Deps) -> list[Message]:
    """The guard found the campaign's bounce or complaint rate too high: pause it (if it is
    sending) with the guard's reason, so delivery parks the remaining batches."""
    reason = " ".join(f"paused by the reputation guard: {msg.reason}".split())[:500]
    paused = _pause(deps, msg.account, msg.campaign, reason)
    return [] if paused is None else [paused]


def _pause_page(deps: Deps, account: str, reason: str, cursor: str | None) -> list[Message]:
    page = list_campaigns(deps, account, status=CampaignStatus.SENDING, limit=PAUSE_PAGE, cursor=cursor)
    why = lock_problem(reason)[0]
    out: list[Message] = []
    for c in page.items:
        paused = _pause(deps, account, c.id, why)
        if paused is not None:
            out.append(paused)
    if page.cursor is not None:
        out.append(PauseAccountCampaigns(account=account, reason=reason, cursor=page.cursor))
    return out


def on_account_sending_locked(msg: AccountSendingLocked, deps: Deps) -> list[Message]:
    """Remember the lock (new sends are refused from now on) and pause the account's
    sending campaigns, one page per run; the next page follows as a command."""
    store.record_sending_state(deps, msg.account, locked=True, reason=msg.reason, at=msg.at)
    reason = store.sending_lock(deps, msg.account)
    if reason is None:  # unlocked meanwhile (an unlock newer than this lock was applied)
        return []
    return _pause_page(deps, msg.account, reason, None)


def handle_pause_account_campaigns(msg: PauseAccountCampaigns, deps: Deps) -> list[Message]:
    """The next page of sending campaigns to pause, while the account is still locked."""
    reason = store.sending_lock(deps, msg.account)
    if reason is None:
        return []
    return _pause_page(deps, msg.account, reason, msg.cursor)


def on_account_sending_unlocked(msg: AccountSendingUnlocked, deps: Deps) -> list[Message]:
    """Sends may start again.  Campaigns paused by the lock stay paused until a person
    resumes them: the lock said something was wrong, and someone should look first."""
    store.record_sending_state(deps, msg.account, locked=False, reason="", at=msg.at)
    return []
