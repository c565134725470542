"""The audience's reactions to feedback and unsubscribes, and the soft-bounce policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.config import Settings
from lunamail.domain.feedback import Bounced, Complained, SoftBounceLimitReached
from lunamail.domain.messages import Message
from lunamail.domain.tracking import Unsubscribed
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.ports.secrets import DerivedSecrets
from lunamail.services.audience import api, reactions
from lunamail.services.audience.errors import NotFound
from lunamail.services.feedback import policy

A = "acme"
EMAIL = "ann@example.com"
DAY = 86400.0


def make_deps(**extra: Any) -> Deps:
    clock = FakeClock()
    return Deps(
        settings=Settings(data_dir=Path("unused"), **extra),
        store=MemoryItemStore(clock=clock),  # one time for the handlers and the item TTLs
        blobs=None,  # type: ignore[arg-type]  # not used by these handlers
        clock=clock,
        secrets=DerivedSecrets(b"k" * 32),
    )


@pytest.fixture
def deps() -> Deps:
    return make_deps()


def lists(deps: Deps) -> tuple[str, str, str]:
    """News and Offers have Ann (and Bob); Empty has nobody."""
    news = api.create_list(deps, A, "News")["id"]
    offers = api.create_list(deps, A, "Offers")["id"]
    empty = api.create_list(deps, A, "Empty")["id"]
    for lid in (news, offers):
        api.subscribe(deps, A, lid, EMAIL)
        api.subscribe(deps, A, lid, "bob@example.com")
    return news, offers, empty


def status(deps: Deps, lid: str, email: str = EMAIL) -> str:
    return str(api.get_subscriber(deps, A, lid, email)["status"])


def counts(deps: Deps, lid: str) -> dict[str, int]:
    return {k: v for k, v in api.count_by_status(deps, A, lid).items() if v}


def bounce(kind: str = "hard", at: float = 1_700_000_000.0, **kw: Any) -> Bounced:
    fields: dict[str, Any] = {"account": A, "campaign": "c1", "email": EMAIL, "bounce_type": kind,
                              "status": "5.1.1" if kind == "hard" else "4.2.2",
                              "diagnostic": "550 5.1.1 user unknown", "at": at, **kw}  # fmt: skip
    return Bounced(**fields)


def names(events: list[Message]) -> list[str]:
    return [e.NAME for e in events]


# ---------------------------------------------------------------- hard bounces, complaints


def test_hard_bounce_suppresses_and_marks_every_list(deps: Deps) -> None:
    news, offers, empty = lists(deps)
    events = reactions.on_bounced(bounce(), deps)
    assert names(events) == ["audience.AddressSuppressed"]
    sup = api.list_suppressions(deps, A)[0]
    assert [s["email"] for s in sup] == [EMAIL]
    assert sup[0]["reason"].startswith("hard bounce: 5.1.1 550 5.1.1 user unknown")
    for lid in (news, offers):
        assert status(deps, lid) == "bounced"
        assert status(deps, lid, "bob@example.com") == "subscribed"
        assert counts(deps, lid) == {"subscribed": 1, "bounced": 1}
    assert counts(deps, empty) == {}
    with pytest.raises(NotFound):
        api.get_subscriber(deps, A, empty, EMAIL)  # never created on a list it was not on


def test_reactions_are_idempotent(deps: Deps) -> None:
    news, offers, _ = lists(deps)
    reactions.on_bounced(bounce(), deps)
    deps.clock.advance(5)  # type: ignore[attr-defined]
    assert reactions.on_bounced(bounce(), deps) == []
    assert counts(deps, news) == counts(deps, offers) == {"subscribed": 1, "bounced": 1}
    assert api.get_subscriber(deps, A, news, EMAIL)["updated_at"] == 1_700_000_000.0


def test_soft_bounce_changes_nothing_in_the_audience(deps: Deps) -> None:
    news, _, _ = lists(deps)
    assert reactions.on_bounced(bounce("soft"), deps) == []
    assert status(deps, news) == "subscribed"
    assert not api.is_suppressed(deps, A, EMAIL)


def test_complaint_outranks_bounce_and_unsubscribe(deps: Deps) -> None:
    news, offers, _ = lists(deps)
    api.unsubscribe(deps, A, offers, EMAIL)
    reactions.on_bounced(bounce(), deps)
    assert status(deps, offers) == "bounced"  # a dead mailbox says more than an unsubscribe
    complaint = Complained(account=A, campaign="c1", email=EMAIL, source="arf", at=1.0)
    assert reactions.on_complained(complaint, deps) == []  # already suppressed: no new event
    assert status(deps, news) == status(deps, offers) == "complained"
    assert counts(deps, news) == counts(deps, offers) == {"subscribed": 1, "complained": 1}
    assert reactions.on_complained(complaint, deps) == []
    assert reactions.on_bounced(bounce(), deps) == []
    assert status(deps, news) == "complained"  # a later bounce never downgrades it


def test_complaint_alone_suppresses_with_its_reason(deps: Deps) -> None:
    news, _, _ = lists(deps)
    complaint = Complained(
        account=A, campaign="c1", email=EMAIL, feedback_type="abuse", source="ses", at=1.0
    )
    assert names(reactions.on_complained(complaint, deps)) == ["audience.AddressSuppressed"]
    assert api.list_suppressions(deps, A)[0][0]["reason"] == "complaint: abuse (ses)"
    assert status(deps, news) == "complained"


def test_feedback_for_an_unknown_address_only_suppresses(deps: Deps) -> None:
    news, _, _ = lists(deps)
    reactions.on_bounced(bounce(email="nobody@example.com"), deps)
    assert api.is_suppressed(deps, A, "nobody@example.com")
    assert counts(deps, news) == {"subscribed": 2}


def test_feedback_is_scoped_to_its_account(deps: Deps) -> None:
    lists(deps)
    other = api.create_list(deps, "other", "News")["id"]
    api.subscribe(deps, "other", other, EMAIL)
    reactions.on_bounced(bounce(), deps)
    assert api.get_subscriber(deps, "other", other, EMAIL)["status"] == "subscribed"
    assert not api.is_suppressed(deps, "other", EMAIL)


# ---------------------------------------------------------------- unsubscribes


def unsub(scope: str, list_id: str) -> Unsubscribed:
    return Unsubscribed(account=A, campaign="c1", list=list_id, email=EMAIL, scope=scope,  # type: ignore[arg-type]
                        method="one-click", at=1.0)  # fmt: skip


def test_unsubscribe_from_one_list(deps: Deps) -> None:
    news, offers, _ = lists(deps)
    events = reactions.on_unsubscribed(unsub("list", news), deps)
    assert [(e.NAME, e.to_dict()["body"]["list"]) for e in events] == [
        ("audience.SubscriberUnsubscribed", news)
    ]
    assert (status(deps, news), status(deps, offers)) == ("unsubscribed", "subscribed")
    assert counts(deps, news) == {"subscribed": 1, "unsubscribed": 1}
    assert not api.is_suppressed(deps, A, EMAIL)
    assert reactions.on_unsubscribed(unsub("list", news), deps) == []
    assert counts(deps, news) == {"subscribed": 1, "unsubscribed": 1}


def test_unsubscribe_from_all_lists_is_not_a_suppression(deps: Deps) -> None:
    news, offers, _ = lists(deps)
    events = reactions.on_unsubscribed(unsub("all", news), deps)
    assert sorted(e.to_dict()["body"]["list"] for e in events) == sorted([news, offers])
    assert status(deps, news) == status(deps, offers) == "unsubscribed"
    assert not api.is_suppressed(deps, A, EMAIL)
    assert reactions.on_unsubscribed(unsub("all", ""), deps) == []


def test_unsubscribe_never_overrides_a_bounce(deps: Deps) -> None:
    news, _, _ = lists(deps)
    reactions.on_bounced(bounce(), deps)
    assert reactions.on_unsubscribed(unsub("all", ""), deps) == []
    assert status(deps, news) == "bounced"


def test_unsubscribe_from_a_deleted_list_is_a_no_op(deps: Deps) -> None:
    news, offers, _ = lists(deps)
    api.delete_list(deps, A, news)
    assert reactions.on_unsubscribed(unsub("list", news), deps) == []
    assert status(deps, offers) == "subscribed"


# ---------------------------------------------------------------- soft-bounce policy


def run_policy(deps: Deps, msg: Bounced) -> list[Message]:
    """The two consumers the routing table wires: the feedback policy, then the audience."""
    out: list[Message] = []
    for ev in policy.count_soft_bounce(msg, deps):
        assert isinstance(ev, SoftBounceLimitReached)
        out.append(ev)
        out += reactions.on_soft_bounce_limit(ev, deps)
    return out


def test_three_soft_bounces_spread_over_a_week_count_as_hard(deps: Deps) -> None:
    news, offers, _ = lists(deps)
    t0 = 1_700_000_000.0
    assert run_policy(deps, bounce("soft", t0, id="b1")) == []
    assert run_policy(deps, bounce("soft", t0 + 3 * DAY, id="b2")) == []
    assert run_policy(deps, bounce("soft", t0 + 5 * DAY, id="b2b")) == []  # 3 of them, but over 5 days
    assert status(deps, news) == "subscribed" and not api.is_suppressed(deps, A, EMAIL)
    events = run_policy(deps, bounce("soft", t0 + 7 * DAY, id="b3"))
    assert names(events) == ["feedback.SoftBounceLimitReached", "audience.AddressSuppressed"]
    reached = events[0]
    assert isinstance(reached, SoftBounceLimitReached)
    assert (reached.count, reached.window_days, reached.email) == (4, 30.0, EMAIL)
    assert status(deps, news) == status(deps, offers) == "bounced"
    reason = api.list_suppressions(deps, A)[0][0]["reason"]
    assert reason.startswith("soft bounces: 4 in 30 days, last 4.2.2")
    assert counts(deps, news) == {"subscribed": 1, "bounced": 1}


def test_soft_bounces_in_one_afternoon_count_once(deps: Deps) -> None:
    t0 = 1_700_000_000.0 - 1_700_000_000.0 % DAY + 12 * 3600  # noon
    for i in range(6):
        assert run_policy(deps, bounce("soft", t0 + i * 600, id=f"pm{i}")) == []
    assert not api.is_suppressed(deps, A, EMAIL)
    # the same afternoon again a week later is the second day, not the seventh bounce
    assert run_policy(deps, bounce("soft", t0 + 7 * DAY, id="later")) == []


def test_sender_side_bounces_are_never_counted(deps: Deps) -> None:
    t0 = 1_700_000_000.0
    for i in range(5):
        assert policy.count_soft_bounce(bounce("sender", t0 + i * 3 * DAY, id=f"x{i}"), deps) == []
    assert deps.store.get(policy.soft_bounce_pk(A), f"E#{EMAIL.lower()}") is None


def test_redelivered_soft_bounces_are_counted_once(deps: Deps) -> None:
    t0 = 1_700_000_000.0
    first = bounce("soft", t0)  # no id: one is derived from the content
    for _ in range(5):
        assert policy.count_soft_bounce(first, deps) == []
    assert policy.count_soft_bounce(bounce("soft", t0 + 4 * DAY, id="x"), deps) == []
    [reached] = policy.count_soft_bounce(bounce("soft", t0 + 8 * DAY, id="y"), deps)
    # the bounce that reached the limit, redelivered: the same event again (for at-least-once)
    assert policy.count_soft_bounce(bounce("soft", t0 + 8 * DAY, id="y"), deps) == [reached]


def test_soft_bounces_outside_the_window_expire(deps: Deps) -> None:
    t0 = 1_700_000_000.0
    for i in range(4):
        assert policy.count_soft_bounce(bounce("soft", t0 + i * 20 * DAY, id=f"s{i}"), deps) == []


def test_hard_bounces_are_not_counted_by_the_policy(deps: Deps) -> None:
    assert all(policy.count_soft_bounce(bounce("hard", id=f"h{i}"), deps) == [] for i in range(4))


def test_limit_from_settings_and_from_the_account_policy_item() -> None:
    deps = make_deps(soft_bounce_limit=2, soft_bounce_window_days=7, soft_bounce_spread_days=1)
    assert policy.get_policy(deps, A) == policy.SoftBouncePolicy(2, 7.0, 1.0)
    assert policy.count_soft_bounce(bounce("soft", 0.0, id="a"), deps) == []
    assert len(policy.count_soft_bounce(bounce("soft", 1.0 + DAY, id="b"), deps)) == 1
    assert policy.set_policy(deps, "strict", soft_bounce_limit=1, soft_bounce_spread_days=0) == (
        policy.SoftBouncePolicy(1, 7.0, 0.0))
    strict = bounce("soft", 0.0, id="c", account="strict")
    assert [e.NAME for e in policy.count_soft_bounce(strict, deps)] == [
        "feedback.SoftBounceLimitReached"
    ]
    with pytest.raises(ValueError, match="limit"):
        policy.set_policy(deps, A, soft_bounce_limit=0)
    with pytest.raises(ValueError, match="spread"):
        policy.set_policy(deps, A, soft_bounce_spread_days=7)
