"""The campaign state machine: every (state, action) pair, legal or not."""

from __future__ import annotations

import itertools

import pytest

from lunamail.domain.campaign_model import (
    Action,
    Attachment,
    Campaign,
    CampaignStatus,
    IllegalTransition,
    allowed_actions,
    can,
    next_status,
)

S = CampaignStatus
A = Action

# Written out by hand (not derived from TRANSITIONS) so a change to the table must be
# a deliberate change here too.
LEGAL: dict[tuple[CampaignStatus, Action], CampaignStatus | None] = {
    (S.DRAFT, A.EDIT): S.DRAFT,
    (S.DRAFT, A.DELETE): None,
    (S.CANCELLED, A.DELETE): None,
    (S.FAILED, A.DELETE): None,
    (S.DRAFT, A.SCHEDULE): S.SCHEDULED,
    (S.SCHEDULED, A.SCHEDULE): S.SCHEDULED,
    (S.SCHEDULED, A.UNSCHEDULE): S.DRAFT,
    (S.DRAFT, A.START): S.SENDING,
    (S.SCHEDULED, A.START): S.SENDING,
    (S.SENDING, A.PAUSE): S.PAUSED,
    (S.PAUSED, A.RESUME): S.SENDING,
    (S.SCHEDULED, A.CANCEL): S.CANCELLED,
    (S.SENDING, A.CANCEL): S.CANCELLED,
    (S.PAUSED, A.CANCEL): S.CANCELLED,
    (S.SENDING, A.COMPLETE): S.SENT,
    (S.PAUSED, A.COMPLETE): S.SENT,
    (S.SCHEDULED, A.FAIL): S.FAILED,
    (S.SENDING, A.FAIL): S.FAILED,
    (S.PAUSED, A.FAIL): S.FAILED,  # a send that reached nobody, with a pause racing its end
    (S.SENT, A.RETRY): S.SENDING,  # retry --failed
    (S.FAILED, A.RETRY): S.SENDING,
}
ALL_PAIRS = list(itertools.product(CampaignStatus, Action))
ILLEGAL = [p for p in ALL_PAIRS if p not in LEGAL]


@pytest.mark.parametrize(("status", "action"), list(LEGAL))
def test_legal_transition(status: CampaignStatus, action: Action) -> None:
    assert can(status, action)
    assert next_status(status, action) == LEGAL[(status, action)]


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
def test_illegal_transition_raises(status: CampaignStatus, action: Action) -> None:
    assert not can(status, action)
    with pytest.raises(IllegalTransition) as info:
        next_status(status, action)
    err = info.value
    assert err.from_status == status
    assert err.action == action
    assert f"a campaign that is {status}" in str(err)


def test_sent_is_terminal_but_for_a_retry_of_its_failures() -> None:
    assert allowed_actions(S.SENT) == [A.RETRY]
    assert set(allowed_actions(S.DRAFT)) == {A.EDIT, A.DELETE, A.SCHEDULE, A.START}


def test_message_reads_naturally() -> None:
    with pytest.raises(IllegalTransition) as info:
        next_status(S.DRAFT, A.PAUSE)
    assert str(info.value).startswith("cannot pause a campaign that is draft")
    assert info.value.to_status == S.PAUSED
    with pytest.raises(IllegalTransition, match="cannot mark as sent a campaign that is draft"):
        next_status(S.DRAFT, A.COMPLETE)


def test_transition_bumps_version_and_sets_changes() -> None:
    c = Campaign(account="a", id="c1", name="n", created_at=1.0, updated_at=1.0)
    d = c.transition(A.SCHEDULE, 5.0, scheduled_at=100.0, schedule_tz="Europe/Paris")
    assert (d.status, d.version, d.updated_at, d.scheduled_at) == (S.SCHEDULED, 1, 5.0, 100.0)
    assert c.status == S.DRAFT  # the original is untouched (frozen)
    with pytest.raises(IllegalTransition):
        d.transition(A.EDIT, 6.0, name="x")


def test_dict_round_trip_and_utc_view() -> None:
    c = Campaign(
        account="a", id="c1", name="n", text=None, lists=("l1", "l2"),
        attachments=(Attachment("k", "a.pdf", "application/pdf"),),
        status=S.SCHEDULED, scheduled_at=1_900_000_000.0,
    )  # fmt: skip
    data = c.to_dict()
    assert data["status"] == "scheduled" and data["lists"] == ["l1", "l2"]
    assert Campaign.from_dict({**data, "unknown_future_field": 1}) == c
    utc = c.scheduled_at_utc
    assert utc is not None and utc.utcoffset() is not None and utc.timestamp() == 1_900_000_000.0
