"""Recipient exports stream markers page by page; non-openers is a merge of sorted streams."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.config import Settings
from lunamail.domain.delivery import BatchSent
from lunamail.domain.feedback import Bounced, Complained
from lunamail.domain.messages import message
from lunamail.domain.tracking import Clicked, Opened, Unsubscribed
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import Page
from lunamail.ports.secrets import DerivedSecrets
from lunamail.services.reports import api, handlers

A, C, T0 = "acme", "c9", 1_700_000_000.0

if "sent_emails" in {f.name for f in dataclasses.fields(BatchSent)}:
    BatchSentE: type[BatchSent] = BatchSent
else:

    @message("reports_exports_test.BatchSent")
    class _BatchSentE(BatchSent):
        sent_emails: tuple[str, ...] = ()

    BatchSentE = _BatchSentE


class CountingStore(MemoryItemStore):
    """Records the largest page a query returned (the export must never ask for all)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.largest = 0

    def query(self, pk: str, **kw: Any) -> Page:
        page = super().query(pk, **kw)
        self.largest = max(self.largest, len(page.items))
        return page


@pytest.fixture
def deps() -> Deps:
    clock = FakeClock(T0)
    return Deps(settings=Settings(data_dir=Path("unused")), store=CountingStore(clock),
                blobs=None, clock=clock, secrets=DerivedSecrets(b"k" * 32))  # type: ignore[arg-type]


def test_non_openers_on_a_few_hundred_recipients_with_small_pages(deps: Deps) -> None:
    rng = random.Random(7)
    emails = [f"user{i:04d}@example.org" for i in range(400)]
    shuffled = emails[:]
    rng.shuffle(shuffled)
    for n in range(0, 400, 50):  # batches arrive in any order
        part = tuple(shuffled[n:n + 50])
        handlers.on_batch_sent(BatchSentE(account=A, campaign=C, batch=f"0-{n}", attempt=0, sent=len(part),  # type: ignore[call-arg]
                                          deferred=0, failed=0, at=T0, sent_emails=part), deps)
    openers = set(rng.sample(emails, 150))
    clickers_only = set(rng.sample(sorted(set(emails) - openers), 20))  # images blocked
    machine_only = set(rng.sample(sorted(set(emails) - openers - clickers_only), 30))
    rest = sorted(set(emails) - openers - clickers_only - machine_only)
    unsubscribed, complained, hard = set(rest[:5]), set(rest[5:8]), set(rest[8:12])
    soft = set(rest[12:15])  # a soft bounce may still be mailed
    for i, e in enumerate(sorted(openers)):
        handlers.on_opened(Opened(account=A, campaign=C, email=e, machine=False, at=T0, id=f"o{i}"), deps)
    for i, e in enumerate(sorted(clickers_only)):
        handlers.on_clicked(Clicked(account=A, campaign=C, email=e, link=0, url="https://e.org",
                                    machine=False, at=T0, id=f"c{i}"), deps)
    for i, e in enumerate(sorted(machine_only)):
        handlers.on_opened(Opened(account=A, campaign=C, email=e, machine=True, at=T0, id=f"m{i}"), deps)
    for e in unsubscribed:
        handlers.on_unsubscribed(Unsubscribed(account=A, campaign=C, list="l", email=e, scope="list",
                                              method="one-click", at=T0), deps)
    for e in complained:
        handlers.on_complained(Complained(account=A, campaign=C, email=e, at=T0), deps)
    for e in hard | soft:
        handlers.on_bounced(Bounced(account=A, campaign=C, email=e, at=T0,
                                    bounce_type="hard" if e in hard else "soft"), deps)

    got = [r["email"] for r in api.export_recipients(deps, A, C, "non-openers", page_size=7)]
    expected = sorted(set(emails) - openers - clickers_only - unsubscribed - complained - hard)
    assert got == expected
    assert len(got) == 400 - 150 - 20 - 5 - 3 - 4
    assert deps.store.largest <= 7  # type: ignore[attr-defined]
    opened = [r["email"] for r in api.export_recipients(deps, A, C, "opened", page_size=7)]
    assert opened == sorted(openers)
    clicked = [r["email"] for r in api.export_recipients(deps, A, C, "clicked", page_size=7)]
    assert clicked == sorted(clickers_only)
    assert [r["email"] for r in api.export_recipients(deps, A, C, "unsubscribed")] == sorted(unsubscribed)
    assert {r["email"] for r in api.export_recipients(deps, A, C, "bounced")} == hard | soft


def test_export_is_lazy_and_refuses_unknown_kinds(deps: Deps) -> None:
    with pytest.raises(ValueError, match="unknown export"):
        next(api.export_recipients(deps, A, C, "everyone"))
    assert list(api.export_recipients(deps, A, C, "non-openers")) == []
