"""Recipient selection: pages of subscribed, unsuppressed members across lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.config import Settings
from lunamail.domain.campaigns import CampaignSendStarted
from lunamail.domain.delivery import RecipientsSelected, SelectRecipients
from lunamail.domain.messages import Message
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.ports.secrets import DerivedSecrets
from lunamail.services.audience import api, handlers

A = "acme"


def make_deps(page_size: int) -> Deps:
    return Deps(
        settings=Settings(data_dir=Path("unused"), page_size=page_size),
        store=MemoryItemStore(),
        blobs=None,  # type: ignore[arg-type]  # selection never touches blobs
        clock=FakeClock(),
        secrets=DerivedSecrets(b"k" * 32),
    )


def select_all(deps: Deps, lists: tuple[str, ...]) -> list[RecipientsSelected]:
    """Run the chain from CampaignSendStarted the way the runtime would."""
    start = CampaignSendStarted(account=A, campaign="c1", lists=lists, content={}, started_at=0.0)
    queue: list[Message] = list(handlers.on_campaign_send_started(start, deps))
    pages: list[RecipientsSelected] = []
    while queue:
        msg = queue.pop(0)
        if isinstance(msg, SelectRecipients):
            queue.extend(handlers.select_recipients(msg, deps))
        elif isinstance(msg, RecipientsSelected):
            pages.append(msg)
    return pages


def test_first_command_starts_at_page_zero_of_the_first_list() -> None:
    start = CampaignSendStarted(account=A, campaign="c1", lists=("l1", "l2"), content={}, started_at=0.0)
    (cmd,) = handlers.on_campaign_send_started(start, make_deps(10))
    assert cmd == SelectRecipients(account=A, campaign="c1", lists=("l1", "l2"), list_index=0, cursor=None, seq=0)


def test_excludes_suppressed_and_not_subscribed_members() -> None:
    deps = make_deps(100)
    lst = api.create_list(deps, A, "news", fields=[{"name": "city", "type": "text"}])
    for e in ("a@x.com", "b@x.com", "c@x.com", "d@x.com"):
        api.subscribe(deps, A, "news", e, name=e[0].upper(), fields={"city": "Oslo"})
    api.unsubscribe(deps, A, "news", "b@x.com")
    api.suppress(deps, A, "c@x.com", reason="bounce")
    dl = api.create_list(deps, A, "doi", double_opt_in=True)
    api.subscribe(deps, A, "doi", "u@x.com")  # unconfirmed: not mailed
    pages = select_all(deps, (lst["id"], dl["id"]))
    emails = [r["email"] for p in pages for r in p.recipients]
    assert emails == ["a@x.com", "d@x.com"]
    assert pages[0].recipients[0] == {"email": "a@x.com", "name": "A", "fields": {"city": "Oslo"}, "list": lst["id"]}


@pytest.mark.parametrize(("sizes", "page_size"), [((5, 3), 2), ((4,), 2), ((0, 3, 0), 3), ((7, 1), 10)])
def test_pages_across_lists_respect_page_size_and_flag_the_last(sizes: tuple[int, ...], page_size: int) -> None:
    deps = make_deps(page_size)
    lists = []
    expected: list[str] = []
    for li, n in enumerate(sizes):
        lists.append(api.create_list(deps, A, f"l{li}")["id"])
        for i in range(n):
            email = f"m{i:02d}@l{li}.com"
            api.subscribe(deps, A, f"l{li}", email)
            expected.append(email)
    pages = select_all(deps, tuple(lists))
    assert [p.seq for p in pages] == list(range(len(pages)))
    assert [p.last for p in pages] == [False] * (len(pages) - 1) + [True]
    assert all(len(p.recipients) <= page_size for p in pages)
    assert [r["email"] for p in pages for r in p.recipients] == expected
    # each list yields its own pages: a page never mixes two lists
    assert all(len({r["list"] for r in p.recipients}) <= 1 for p in pages)


def test_no_lists_gives_one_empty_last_page() -> None:
    pages = select_all(make_deps(5), ())
    assert [(p.seq, p.recipients, p.last) for p in pages] == [(0, (), True)]
