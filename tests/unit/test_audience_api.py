"""The synchronous audience API on the in-memory store: lists, subscribers, suppression."""

from __future__ import annotations

from pathlib import Path

import pytest

from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.config import Settings
from lunamail.domain import audience as dom
from lunamail.domain.messages import Message
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.ports.secrets import DerivedSecrets
from lunamail.services.audience import api, handlers
from lunamail.services.audience.errors import Conflict, InvalidInput, NotFound

A = "acme"


@pytest.fixture
def deps() -> Deps:
    return Deps(
        settings=Settings(data_dir=Path("unused")),
        store=MemoryItemStore(),
        blobs=None,  # type: ignore[arg-type]  # not used by these calls
        clock=FakeClock(),
        secrets=DerivedSecrets(b"k" * 32),
    )


def test_list_names_are_unique_per_account_case_insensitively(deps: Deps) -> None:
    api.create_list(deps, A, "News")
    with pytest.raises(Conflict, match="already exists"):
        api.create_list(deps, A, "news")
    api.create_list(deps, "other", "news")  # another account may use the name


def test_get_list_by_id_or_name_and_rename(deps: Deps) -> None:
    lst = api.create_list(deps, A, "News", description="weekly", fields=[{"name": "age", "type": "number"}])
    assert api.get_list(deps, A, lst["id"])["name"] == "News"
    assert api.get_list(deps, A, "news")["fields"] == [{"name": "age", "type": "number"}]
    api.update_list(deps, A, "News", name="Weekly")
    assert api.get_list(deps, A, "weekly")["id"] == lst["id"]
    with pytest.raises(NotFound):
        api.get_list(deps, A, "news")


def test_bad_field_definitions_are_refused(deps: Deps) -> None:
    with pytest.raises(InvalidInput) as e:
        api.create_list(deps, A, "x", fields=[{"name": "age", "type": "integer"}])
    assert "fields" in e.value.fields


def test_subscribe_normalises_and_double_opt_in_starts_unconfirmed(deps: Deps) -> None:
    api.create_list(deps, A, "doi", double_opt_in=True)
    events: list[Message] = []
    s = api.subscribe(deps, A, "doi", "  Ann@Bücher.DE ", name="Ann", events=events)
    assert (s["email"], s["status"]) == ("Ann@xn--bcher-kva.de", "unconfirmed")
    assert events == [dom.SubscriberSubscribed(account=A, list=s["list"], email=s["email"], status="unconfirmed", source="api")]
    with pytest.raises(InvalidInput, match="invalid email address"):
        api.subscribe(deps, A, "doi", "ann@")


def test_counts_follow_every_status_change(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    for e in ("a@x.com", "b@x.com", "c@x.com"):
        api.subscribe(deps, A, "news", e)
    events: list[Message] = []
    api.unsubscribe(deps, A, "news", "b@x.com", events=events)
    api.unsubscribe(deps, A, "news", "b@x.com", events=events)  # twice: no second event
    api.delete_subscriber(deps, A, "news", "c@x.com")
    assert api.count_by_status(deps, A, "news") == {
        "subscribed": 1, "unconfirmed": 0, "unsubscribed": 1, "bounced": 0, "complained": 0
    }  # fmt: skip
    assert [type(e).__name__ for e in events] == ["SubscriberUnsubscribed"]
    assert api.list_lists(deps, A)[0]["counts"]["subscribed"] == 1


def test_update_merges_fields_and_checks_types(deps: Deps) -> None:
    api.create_list(deps, A, "news", fields=[{"name": "age", "type": "number"}])
    api.subscribe(deps, A, "news", "a@x.com", fields={"age": 30, "city": "Oslo"})
    s = api.update_subscriber(deps, A, "news", "a@x.com", name="A", fields={"age": 31})
    assert (s["name"], s["fields"]) == ("A", {"age": 31, "city": "Oslo"})
    assert api.update_subscriber(deps, A, "news", "a@x.com", fields={"age": "32"})["fields"]["age"] == 32
    with pytest.raises(InvalidInput) as e:
        api.update_subscriber(deps, A, "news", "a@x.com", fields={"age": "old"})
    assert e.value.fields == {"age": "not a number"}
    with pytest.raises(InvalidInput) as e:
        api.update_subscriber(deps, A, "news", "a@x.com", fields={"age": True})
    assert e.value.fields == {"age": "expected number"}


def test_subscribing_a_suppressed_address_is_a_conflict(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    api.suppress(deps, A, "a@x.com", reason="complaint")
    with pytest.raises(Conflict, match="suppressed"):
        api.subscribe(deps, A, "news", "a@x.com")
    api.unsuppress(deps, A, "a@x.com")
    assert api.subscribe(deps, A, "news", "a@x.com")["status"] == "subscribed"
    with pytest.raises(NotFound):
        api.unsuppress(deps, A, "a@x.com")


def test_list_with_status_filter_and_cursor_and_search(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    for i in range(7):
        api.subscribe(deps, A, "news", f"u{i}@x.com")
    api.unsubscribe(deps, A, "news", "u3@x.com")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        rows, cursor = api.list_subscribers(deps, A, "news", status="subscribed", limit=2, cursor=cursor)
        seen.extend(r["email"] for r in rows)
        if cursor is None:
            break
    assert seen == [f"u{i}@x.com" for i in range(7) if i != 3]
    assert [r["email"] for r in api.search_subscribers(deps, A, "news", "u5")] == ["u5@x.com"]
    with pytest.raises(InvalidInput):
        api.list_subscribers(deps, A, "news", status="gone")


def test_suppression_listing(deps: Deps) -> None:
    for e in ("b@x.com", "a@x.com"):
        api.suppress(deps, A, e, reason="manual")
    rows, cursor = api.list_suppressions(deps, A)
    assert [r["email"] for r in rows] == ["a@x.com", "b@x.com"] and cursor is None
    assert api.is_suppressed(deps, A, "A@X.COM") is True  # one mailbox, whatever the case
    assert api.is_suppressed(deps, A, "a@X.COM") is True
    assert api.is_suppressed(deps, A, "c@x.com") is False


def test_delete_list_purges_subscribers_page_by_page(deps: Deps) -> None:
    lst = api.create_list(deps, A, "news")
    for i in range(30):
        api.subscribe(deps, A, "news", f"u{i}@x.com")
    pending = api.delete_list(deps, A, "news")
    runs = 0
    while pending:
        pending = handlers.purge_list(pending[0], deps)  # type: ignore[arg-type]
        runs += 1
    assert runs >= 1
    assert deps.store.query(dom.subscribers_pk(A, lst["id"])).items == []
    with pytest.raises(NotFound):
        api.get_list(deps, A, "news")
    api.create_list(deps, A, "news")  # the name is free again
