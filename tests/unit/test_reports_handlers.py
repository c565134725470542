"""Report projections on the in-memory store: exactly-once counting, unique vs total vs
machine, rates, links, unmapped events, time series, versions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.config import Settings
from lunamail.domain.campaigns import CampaignPaused, CampaignResumed, CampaignSendStarted
from lunamail.domain.delivery import (
    BatchSent,
    CampaignDelivered,
    PlanningCompleted,
    RecipientsPlanned,
)
from lunamail.domain.feedback import Bounced, Complained, Delivered
from lunamail.domain.messages import Message, message
from lunamail.domain.tracking import Clicked, Opened, Unsubscribed
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import TransactionCancelled, WriteOp
from lunamail.ports.secrets import DerivedSecrets
from lunamail.services.reports import api, handlers
from lunamail.services.reports import keys as k

A, C = "acme", "c1"
T0 = 1_700_000_040.0  # the start of a minute

if "sent_emails" in {f.name for f in dataclasses.fields(BatchSent)}:
    BatchSentE: type[BatchSent] = BatchSent
else:  # until delivery's BatchSent carries the field

    @message("reports_unit_test.BatchSent")
    class _BatchSentE(BatchSent):
        sent_emails: tuple[str, ...] = ()

    BatchSentE = _BatchSentE

ROUTES: dict[type[Message], Callable[[Any, Deps], list[Message]]] = {
    CampaignSendStarted: handlers.on_send_started,
    RecipientsPlanned: handlers.on_recipients_planned,
    PlanningCompleted: handlers.on_planning_completed,
    BatchSentE: handlers.on_batch_sent,
    CampaignDelivered: handlers.on_delivered,
    Delivered: handlers.on_feedback_delivered,
    Bounced: handlers.on_bounced,
    Complained: handlers.on_complained,
    Opened: handlers.on_opened,
    Clicked: handlers.on_clicked,
    Unsubscribed: handlers.on_unsubscribed,
}


@pytest.fixture
def deps() -> Deps:
    clock = FakeClock(T0)  # the store shares it, so marker TTLs are judged on the same time
    return Deps(
        settings=Settings(data_dir=Path("unused")),
        store=MemoryItemStore(clock=clock),
        blobs=None,  # type: ignore[arg-type]  # reports never touch blobs
        clock=clock,
        secrets=DerivedSecrets(b"k" * 32),
    )


def feed(deps: Deps, *msgs: Message) -> None:
    for m in msgs:
        assert ROUTES[type(m)](m, deps) == []


def batch(n: int, emails: Sequence[str], batch_id: str = "0-0", at: float = T0) -> BatchSent:
    return BatchSentE(account=A, campaign=C, batch=batch_id, attempt=0, sent=n, deferred=0,
                      failed=0, at=at, sent_emails=tuple(emails))  # type: ignore[call-arg]


def opened(email: str, *, machine: bool = False, id: str = "", at: float = T0, campaign: str = C) -> Opened:
    return Opened(account=A, campaign=campaign, email=email, machine=machine,
                  reason="proxy" if machine else "", at=at, id=id)


def clicked(email: str, link: int, *, machine: bool = False, id: str = "", at: float = T0) -> Clicked:
    return Clicked(account=A, campaign=C, email=email, link=link, url=f"https://example.com/{link}",
                   machine=machine, reason="scanner" if machine else "", at=at, id=id)


def report(deps: Deps, campaign: str = C) -> dict[str, Any]:
    return api.campaign_report(deps, A, campaign)


def test_every_projection_counts_once_when_each_event_is_delivered_twice(deps: Deps) -> None:
    events: list[Message] = [
        CampaignSendStarted(account=A, campaign=C, lists=("l",), content={"subject": "Hi", "name": "N"},
                            started_at=T0),
        RecipientsPlanned(account=A, campaign=C, seq=0, count=3),
        PlanningCompleted(account=A, campaign=C, total=3),
        batch(3, ["a@x.org", "b@x.org", "c@x.org"]),
        Delivered(account=A, campaign=C, email="a@x.org", at=T0),
        Bounced(account=A, campaign=C, email="c@x.org", bounce_type="hard", at=T0),
        Complained(account=A, campaign=C, email="b@x.org", at=T0),
        opened("a@x.org", id="o1"),
        opened("a@x.org", machine=True, id="o2"),
        clicked("a@x.org", 0, id="k1"),
        clicked("a@x.org", 0, machine=True, id="k2"),
        Unsubscribed(account=A, campaign=C, list="l", email="b@x.org", scope="list",
                     method="one-click", at=T0),
        CampaignDelivered(account=A, campaign=C, planned=3, sent=3, failed=0, at=T0 + 5),
    ]
    feed(deps, *events)
    once = report(deps)
    feed(deps, *events)
    assert report(deps) == once
    assert (once["status"], once["planned"], once["sent"], once["progress"]) == ("sent", 3, 3, 1.0)
    assert once["delivered"] == 1
    assert once["bounced"] == {"hard": 1, "soft": 0, "sender": 0, "total": 1}
    assert once["complained"] == 1
    assert once["unsubscribed"] == 1
    assert once["opened"] == {"unique": 1, "total": 1, "machine": 1, "machine_unique": 1}
    assert once["clicked"] == {"unique": 1, "total": 1, "machine": 1, "machine_unique": 1}
    assert [(x["link"], x["total"], x["unique"], x["machine"]) for x in once["links"]] == [(0, 1, 1, 1)]


def test_unique_total_and_machine_opens_are_kept_apart(deps: Deps) -> None:
    feed(deps, opened("a@x.org", id="1"), opened("a@x.org", id="2"), opened("b@x.org", id="3"),
         opened("c@x.org", machine=True, id="4"), opened("c@x.org", machine=True, id="5"),
         opened("a@x.org", machine=True, id="6"))
    o = report(deps)["opened"]
    assert o == {"unique": 2, "total": 3, "machine": 3, "machine_unique": 2}
    # a machine open never makes an address an opener
    assert [r["email"] for r in api.export_recipients(deps, A, C, "opened")] == ["a@x.org", "b@x.org"]


def test_sender_side_rejections_are_counted_per_receiving_domain(deps: Deps) -> None:
    def rej(email: str, status: str) -> Bounced:
        return Bounced(account=A, campaign=C, email=email, bounce_type="sender", status=status, at=T0)

    feed(deps, *(rej(f"p{i}@gmail.com", "5.7.26") for i in range(5)), rej("p0@gmail.com", "5.7.26"),
         rej("q@gmail.com", "5.7.1"), rej("r@yahoo.com", "4.7.0"))
    r = report(deps)
    assert r["bounced"] == {"hard": 0, "soft": 0, "sender": 7, "total": 0}
    assert r["rejected"] == [
        {"domain": "gmail.com", "count": 6, "status": "5.7.26", "reason": "DMARC / authentication",
         "statuses": {"5.7.26": 5, "5.7.1": 1}},
        {"domain": "yahoo.com", "count": 1, "status": "4.7.0", "reason": "throttled", "statuses": {"4.7.0": 1}},
    ]
    assert r["rates"]["bounce_rate"] == 0.0  # not a recipient bounce


def test_complaints_show_their_sources(deps: Deps) -> None:
    feed(deps, Complained(account=A, campaign=C, email="a@x.org", source="arf", at=T0),
         Complained(account=A, campaign=C, email="b@x.org", source="ses", at=T0),
         Complained(account=A, campaign=C, email="c@x.org", source="ses", at=T0))
    r = report(deps)
    assert (r["complained"], r["complaint_sources"]) == (3, {"fbl": 1, "ses": 2})


def test_events_without_an_id_are_deduplicated_by_their_content(deps: Deps) -> None:
    feed(deps, opened("a@x.org", at=T0), opened("a@x.org", at=T0), opened("a@x.org", at=T0 + 1))
    assert report(deps)["opened"]["total"] == 2


def test_bounces_count_once_per_recipient_and_type(deps: Deps) -> None:
    def b(email: str, kind: Any) -> Bounced:
        return Bounced(account=A, campaign=C, email=email, bounce_type=kind, status="5.1.1", at=T0)

    feed(deps, b("a@x.org", "soft"), b("a@x.org", "soft"), b("a@x.org", "hard"), b("b@X.ORG", "hard"),
         b("b@x.org", "hard"))  # the domain is case-folded like the audience does
    assert report(deps)["bounced"] == {"hard": 2, "soft": 1, "sender": 0, "total": 3}
    rows = list(api.export_recipients(deps, A, C, "bounced"))
    assert [(r["email"], r["type"]) for r in rows] == [("a@x.org", "hard"), ("b@x.org", "hard")]


def test_clicks_per_link_with_url_total_and_unique(deps: Deps) -> None:
    feed(deps, clicked("a@x.org", 1, id="1"), clicked("a@x.org", 1, id="2"), clicked("b@x.org", 1, id="3"),
         clicked("a@x.org", 0, id="4"), clicked("c@x.org", 0, machine=True, id="5"))
    r = report(deps)
    assert r["clicked"] == {"unique": 2, "total": 4, "machine": 1, "machine_unique": 1}
    assert r["links"] == [
        {"link": 0, "url": "https://example.com/0", "total": 1, "unique": 1, "machine": 1},
        {"link": 1, "url": "https://example.com/1", "total": 3, "unique": 2, "machine": 0},
    ]


def test_rates_use_delivered_when_known_else_sent(deps: Deps) -> None:
    emails = [f"u{i:03d}@x.org" for i in range(200)]
    feed(deps, batch(200, emails))
    feed(deps, *(opened(e, id=f"o{e}") for e in emails[:50]))
    feed(deps, *(clicked(e, 0, id=f"c{e}") for e in emails[:10]))
    feed(deps, *(Bounced(account=A, campaign=C, email=e, bounce_type="hard", at=T0) for e in emails[190:]))
    rates = report(deps)["rates"]
    assert rates["open_rate"] == 0.25  # 50 / 200 sent (no delivery notifications)
    assert rates["click_rate"] == 0.05
    assert rates["click_to_open_rate"] == 0.2
    assert rates["bounce_rate"] == 0.05
    assert rates["delivery_rate"] == 0.95  # estimated: sent - bounced
    feed(deps, *(Delivered(account=A, campaign=C, email=e, at=T0) for e in emails[:100]))
    feed(deps, Complained(account=A, campaign=C, email=emails[0], at=T0))
    feed(deps, *(Unsubscribed(account=A, campaign=C, list="", email=e, scope="all", method="page", at=T0)
                 for e in emails[:3]))
    rates = report(deps)["rates"]
    assert rates["delivery_rate"] == 0.5
    assert rates["open_rate"] == 0.5  # 50 / 100 delivered
    assert rates["click_rate"] == 0.1
    assert rates["complaint_rate"] == 0.01
    assert rates["unsubscribe_rate"] == 0.03


def test_rates_are_zero_not_an_error_on_an_empty_campaign(deps: Deps) -> None:
    r = report(deps)
    assert set(r["rates"].values()) == {0.0}
    assert (r["status"], r["sent"], r["links"]) == ("unknown", 0, [])


def test_events_without_a_campaign_go_to_the_unmapped_report(deps: Deps) -> None:
    feed(deps, Bounced(account=A, campaign="", email="lost@x.org", bounce_type="hard", at=T0),
         Complained(account=A, campaign="", email="lost@x.org", at=T0),
         opened("lost@x.org", id="z", campaign=""))
    un = api.unmapped_report(deps, A)
    assert (un["bounced"]["hard"], un["complained"], un["opened"]["unique"]) == (1, 1, 1)
    assert report(deps)["bounced"]["total"] == 0
    assert deps.store.get(f"A#{A}#R#_unmapped", k.marker_sk(k.BOUNCE_HARD, "lost@x.org")) is not None


def test_hot_counters_are_spread_over_shards_and_summed_on_read(deps: Deps) -> None:
    feed(deps, *(opened(f"p{i}@x.org", id=str(i)) for i in range(64)))
    shards = deps.store.query(k.report_pk(A, C), prefix="STATS#").items
    assert len(shards) > 4
    assert sum(int(s.get("opened_total", 0)) for s in shards) == 64
    assert report(deps)["opened"]["total"] == 64


def test_timeseries_per_minute_covers_the_new_counters(deps: Deps) -> None:
    feed(deps, batch(2, ["a@x.org", "b@x.org"]),
         opened("a@x.org", id="1"), opened("b@x.org", id="2", at=T0 + 61),
         clicked("b@x.org", 0, id="3", at=T0 + 65),
         Bounced(account=A, campaign=C, email="c@x.org", bounce_type="soft", at=T0 + 125),
         Unsubscribed(account=A, campaign=C, list="", email="a@x.org", scope="all", method="page",
                      at=T0 + 130))
    series = api.timeseries(deps, A, C)
    assert [(r["minute"], r["sent"], r["opens"], r["clicks"], r["bounces"], r["unsubscribes"])
            for r in series] == [(T0, 2, 1, 0, 0, 0), (T0 + 60, 0, 1, 1, 0, 0), (T0 + 120, 0, 0, 0, 1, 1)]
    assert [r["minute"] for r in api.timeseries(deps, A, C, since=T0 + 60, limit=1)] == [T0 + 60]


def test_report_version_moves_on_every_counted_change_only(deps: Deps) -> None:
    v0 = api.report_version(deps, A, C)
    feed(deps, opened("a@x.org", id="1"))
    v1 = api.report_version(deps, A, C)
    feed(deps, opened("a@x.org", id="1"))  # a duplicate: nothing changes
    assert api.report_version(deps, A, C) == v1 != v0
    feed(deps, CampaignDelivered(account=A, campaign=C, planned=0, sent=0, failed=0, at=T0))
    assert api.report_version(deps, A, C) != v1


def test_batch_sent_counts_once_and_records_who_was_sent_to(deps: Deps) -> None:
    feed(deps, batch(2, ["a@x.org", "b@x.org"]), batch(2, ["a@x.org", "b@x.org"]),
         batch(1, ["c@x.org"], batch_id="0-1"))
    assert report(deps)["sent"] == 3
    assert [r["email"] for r in api.export_recipients(deps, A, C, "non-openers")] == [
        "a@x.org", "b@x.org", "c@x.org"]


class ConflictingStore(MemoryItemStore):
    """Cancels every transaction as DynamoDB does on a write conflict."""

    def transact(self, ops: Sequence[WriteOp]) -> None:
        raise TransactionCancelled(["TransactionConflict"] + [""] * (len(ops) - 1))


def test_a_transaction_conflict_is_retried_not_taken_for_a_duplicate(deps: Deps) -> None:
    deps.store = ConflictingStore(clock=deps.clock)
    with pytest.raises(TransactionCancelled):
        handlers.on_opened(opened("a@x.org", id="1"), deps)
    with pytest.raises(TransactionCancelled):
        handlers.on_batch_sent(batch(1, ["a@x.org"]), deps)


def test_late_or_redelivered_lifecycle_events_never_move_the_status_back(deps: Deps) -> None:
    started = CampaignSendStarted(account=A, campaign=C, lists=("l",), content={"subject": "S"}, started_at=T0)
    handlers.on_send_started(started, deps)
    handlers.on_paused(CampaignPaused(account=A, campaign=C, reason="typo"), deps)
    handlers.on_send_started(started, deps)  # redelivered after the pause
    assert report(deps)["status"] == "paused"
    handlers.on_resumed(CampaignResumed(account=A, campaign=C), deps)
    assert report(deps)["status"] == "sending"
    handlers.on_delivered(CampaignDelivered(account=A, campaign=C, planned=0, sent=0, failed=0, at=T0), deps)
    handlers.on_resumed(CampaignResumed(account=A, campaign=C), deps)  # a late duplicate
    handlers.on_paused(CampaignPaused(account=A, campaign=C), deps)
    assert report(deps)["status"] == "sent"
