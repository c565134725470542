"""The batch forms of the per-recipient report handlers: same report as one event per call,
in any grouping, under redelivery, after a crash between transactions, and when a marker
appears between the batch's read and its write."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.config import Settings
from lunamail.domain.feedback import Bounced, Complained, Delivered
from lunamail.domain.messages import Message
from lunamail.domain.tracking import Clicked, Opened, Unsubscribed
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.ports.handlers import batch_of
from lunamail.ports.itemstore import WriteOp
from lunamail.ports.secrets import DerivedSecrets
from lunamail.services.reports import api, handlers
from lunamail.services.reports import keys as k

A, C = "acme", "c1"
T0 = 1_700_000_040.0

SINGLE: dict[type[Message], Callable[[Any, Deps], list[Message]]] = {
    Opened: handlers.on_opened,
    Clicked: handlers.on_clicked,
    Delivered: handlers.on_feedback_delivered,
    Bounced: handlers.on_bounced,
    Complained: handlers.on_complained,
    Unsubscribed: handlers.on_unsubscribed,
}


def make_deps() -> Deps:
    clock = FakeClock(T0)
    return Deps(
        settings=Settings(data_dir=Path("unused")),
        store=MemoryItemStore(clock=clock),
        blobs=None,  # type: ignore[arg-type]  # reports never touch blobs
        clock=clock,
        secrets=DerivedSecrets(b"k" * 32),
    )


def events(n: int, seed: int = 7, readers: int = 40) -> list[Message]:
    """A mixed stream: repeat readers, machine traffic, several minutes, campaigns, links,
    events without ids, and exact duplicates (a redelivery inside one batch)."""
    rng = random.Random(seed)
    out: list[Message] = []
    for i in range(n):
        email = f"r{rng.randrange(readers)}@x.org"
        at = T0 + rng.randrange(0, 240)
        campaign = C if rng.random() < 0.9 else "c2"
        machine = rng.random() < 0.2
        eid = "" if rng.random() < 0.1 else f"e{i}"
        roll = rng.random()
        if roll < 0.55:
            out.append(Opened(account=A, campaign=campaign, email=email, machine=machine, at=at, id=eid))
        elif roll < 0.85:
            link = rng.randrange(3)
            out.append(Clicked(account=A, campaign=campaign, email=email, link=link,
                               url=f"https://example.com/{link}", machine=machine, at=at, id=eid))
        elif roll < 0.9:
            out.append(Delivered(account=A, campaign=campaign, email=email, at=at))
        elif roll < 0.94:
            out.append(Bounced(account=A, campaign=campaign, email=email,
                               bounce_type=rng.choice(["hard", "soft"]), at=at))
        elif roll < 0.97:
            out.append(Complained(account=A, campaign=campaign, email=email, at=at))
        else:
            out.append(Unsubscribed(account=A, campaign=campaign, list="l", email=email,
                                    scope="list", method="one-click", at=at))
        if rng.random() < 0.05:
            out.append(out[-1])
    return out


def one_by_one(deps: Deps, msgs: Sequence[Message]) -> None:
    for m in msgs:
        SINGLE[type(m)](m, deps)


def batched(deps: Deps, msgs: Sequence[Message], size: int) -> None:
    """What the runtime does: each type has its own queue; batches of ``size`` per queue."""
    by_type: dict[type[Message], list[Message]] = {}
    for m in msgs:
        by_type.setdefault(type(m), []).append(m)
    for cls, items in by_type.items():
        spec = batch_of(SINGLE[cls])
        assert spec is not None
        for i in range(0, len(items), size):
            assert spec.handle(items[i:i + size], deps) == []


def snapshot(deps: Deps) -> dict[str, Any]:
    """Both reports, the per-minute series and every unique marker."""
    out: dict[str, Any] = {}
    for campaign in (C, "c2"):
        out[campaign] = api.campaign_report(deps, A, campaign)
        out[f"ts-{campaign}"] = api.timeseries(deps, A, campaign)
        page = deps.store.query(k.report_pk(A, campaign), prefix="U#", limit=1000)
        out[f"markers-{campaign}"] = sorted(i["sk"] for i in page.items)
    return out


def test_every_per_recipient_handler_has_a_batch_form() -> None:
    for handler in SINGLE.values():
        spec = batch_of(handler)
        assert spec is not None and spec.max_size == handlers.BATCH_SIZE


@pytest.mark.parametrize("size", [1, 7, 200])
def test_batches_give_the_same_report_as_one_event_per_call(size: int) -> None:
    msgs = events(600)
    single, batch = make_deps(), make_deps()
    one_by_one(single, msgs)
    batched(batch, msgs, size)
    assert snapshot(batch) == snapshot(single)
    assert snapshot(batch)[C]["opened"]["total"] > 0


def test_a_redelivered_batch_counts_nothing_twice_even_regrouped() -> None:
    msgs = events(500, seed=3)
    expected = make_deps()
    one_by_one(expected, msgs)
    deps = make_deps()
    batched(deps, msgs, 200)
    batched(deps, msgs, 200)
    batched(deps, list(reversed(msgs)), 33)
    assert snapshot(deps) == snapshot(expected)


class CrashAfter(MemoryItemStore):
    """A store whose ``transact`` dies (like a killed worker) after ``ok`` transactions."""

    def __init__(self, ok: int, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.ok = ok

    def transact(self, ops: Sequence[WriteOp]) -> None:
        if self.ok <= 0:
            raise RuntimeError("worker killed")
        self.ok -= 1
        super().transact(ops)


def test_a_crash_between_transactions_is_repaired_by_the_redelivery() -> None:
    # fresh readers each time, so a batch of 200 needs several transactions
    msgs = [Opened(account=A, campaign=C, email=f"n{i}@x.org", machine=i % 5 == 0, at=T0, id=f"o{i}")
            for i in range(200)]
    expected = make_deps()
    one_by_one(expected, msgs)
    clock = FakeClock(T0)
    deps = make_deps()
    deps = Deps(settings=deps.settings, store=CrashAfter(1, clock), blobs=deps.blobs, clock=clock,
                secrets=deps.secrets)
    with pytest.raises(RuntimeError):
        handlers.on_opened_batch(msgs, deps)
    partial = api.campaign_report(deps, A, C)["opened"]
    assert 0 < partial["total"] + partial["machine"] < 200  # the first transaction committed
    assert isinstance(deps.store, CrashAfter)
    deps.store.ok = 10**6
    handlers.on_opened_batch(msgs, deps)  # the queue redelivers the whole batch
    assert snapshot(deps) == snapshot(expected)


class MarkerSneaksIn(MemoryItemStore):
    """Before the first transaction, another worker counts one event of the batch."""

    def __init__(self, clock: FakeClock, sneak: Callable[[], object]) -> None:
        super().__init__(clock=clock)
        self.sneak: Callable[[], object] | None = sneak

    def transact(self, ops: Sequence[WriteOp]) -> None:
        sneak, self.sneak = self.sneak, None
        if sneak is not None:
            sneak()
        super().transact(ops)


def test_a_marker_written_between_read_and_write_falls_back_to_one_by_one() -> None:
    msgs = [Opened(account=A, campaign=C, email=f"r{i % 30}@x.org", machine=False, at=T0, id=f"o{i}")
            for i in range(60)]
    expected = make_deps()
    one_by_one(expected, msgs)
    clock = FakeClock(T0)
    base = make_deps()
    holder: list[Deps] = []
    store = MarkerSneaksIn(clock, lambda: handlers.on_opened(msgs[5], holder[0]))
    deps = Deps(settings=base.settings, store=store, blobs=base.blobs, clock=clock,
                secrets=base.secrets)
    holder.append(deps)
    handlers.on_opened_batch(msgs, deps)
    assert snapshot(deps) == snapshot(expected)
    assert api.campaign_report(deps, A, C)["opened"] == {
        "unique": 30, "total": 60, "machine": 0, "machine_unique": 0}


class CountingStore(MemoryItemStore):
    """Counts transactions and their operations."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.transactions: list[int] = []

    def transact(self, ops: Sequence[WriteOp]) -> None:
        self.transactions.append(len(ops))
        super().transact(ops)


def counting_deps() -> tuple[Deps, CountingStore]:
    base = make_deps()
    assert isinstance(base.clock, FakeClock)
    store = CountingStore(base.clock)
    return Deps(settings=base.settings, store=store, blobs=base.blobs, clock=base.clock,
                secrets=base.secrets), store


def opens(ids: Sequence[str], readers: int = 5) -> list[Opened]:
    return [Opened(account=A, campaign=C, email=f"r{i % readers}@x.org", machine=False, at=T0, id=eid)
            for i, eid in enumerate(ids)]


def test_sixteen_consecutive_event_ids_share_one_mark_item_and_a_batch_one_transaction() -> None:
    deps, store = counting_deps()
    msgs = opens([f"0123456789abcdef{i:08x}" for i in range(200)])
    handlers.on_opened_batch(msgs, deps)
    assert len(store.transactions) == 1
    marks = deps.store.query(k.report_pk(A, C), prefix=k.EVENTS, limit=1000).items
    assert len(marks) == 13  # 200 ids / 16 per item, rounded up
    assert sorted(eid for m in marks for eid in k.marked_events(m["sk"], m)) == sorted(
        f"open#{m.id}" for m in msgs)
    shards = [i for i in deps.store.query(k.report_pk(A, C), prefix="STATS#", limit=100).items]
    assert len(shards) == 1  # a batch adds its counts to one shard item
    assert api.campaign_report(deps, A, C)["opened"] == {
        "unique": 5, "total": 200, "machine": 0, "machine_unique": 0}


def test_a_redelivered_event_counts_once_whichever_path_sees_it() -> None:
    deps, _store = counting_deps()
    msgs = opens([f"abc{i:04x}" for i in range(40)])
    handlers.on_opened_batch(msgs[:20], deps)
    for m in msgs[:25]:  # redelivered one by one, with five new ones
        handlers.on_opened(m, deps)
    handlers.on_opened_batch(list(reversed(msgs)), deps)  # everything again, plus the rest
    handlers.on_opened_batch(msgs, deps)
    assert api.campaign_report(deps, A, C)["opened"]["total"] == 40


def test_more_ids_on_one_mark_item_than_one_update_carries() -> None:
    # ids that differ only in a last character that is not hex: 60 marks on one item,
    # written MARKS_PER_OP at a time
    chars = "".join(chr(c) for c in range(ord("A"), ord("A") + 60))
    msgs = opens([f"same-prefix-{c}" for c in chars])
    deps, store = counting_deps()
    handlers.on_opened_batch(msgs, deps)
    assert len(store.transactions) >= -(-60 // handlers.MARKS_PER_OP)
    handlers.on_opened_batch(msgs, deps)
    for m in msgs:
        handlers.on_opened(m, deps)
    [item] = deps.store.query(k.report_pk(A, C), prefix=k.EVENTS, limit=10).items
    assert len(list(k.marked_events(item["sk"], item))) == 60
    assert api.campaign_report(deps, A, C)["opened"]["total"] == 60
