"""The ItemStore contract: every adapter must pass every test here.

An adapter's test module subclasses ``ItemStoreContract`` and overrides the
``store`` fixture to build the adapter; nothing else.  Each test works in its
own partition (``self.pk``-style unique keys), so a backend may share one
table across tests.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lunamail.ports.itemstore import (
    IF_ABSENT,
    IF_EXISTS,
    MAX_ITEM_BYTES,
    Check,
    Condition,
    ConditionFailed,
    Delete,
    ItemStore,
    LimitExceeded,
    Put,
    TransactionCancelled,
    Update,
    ValidationError,
    attr_equals,
    query_all,
)


def new_pk() -> str:
    return f"T#{uuid.uuid4().hex}"


class ItemStoreContract:
    """Abstract: subclasses override the ``store`` fixture."""

    #: threads racing on one counter; an emulator that is not atomic itself may lower it
    concurrent_writers = 8

    @pytest.fixture
    def store(self) -> Iterator[ItemStore]:
        raise NotImplementedError("an adapter's test module builds the store")

    @pytest.fixture
    def pk(self) -> str:
        return new_pk()

    # ------------------------------------------------------------ get / put

    def test_is_an_itemstore(self, store: ItemStore) -> None:
        assert isinstance(store, ItemStore)

    def test_put_get_round_trips_every_value_type(self, store: ItemStore, pk: str) -> None:
        item = {
            "pk": pk,
            "sk": "ITEM",
            "s": "héllo ✉",
            "empty": "",
            "i": 42,
            "neg": -(2**62),
            "f": 2.5,
            "t": True,
            "no": False,
            "none": None,
            "b": b"\x00\xffbinary",
            "l": [1, "two", 3.25, None, b"\x01", [True]],
            "m": {"nested": {"deep": b"x", "n": 7}, "list": []},
        }
        store.put(item)
        got = store.get(pk, "ITEM")
        assert got == item
        assert got is not None
        assert type(got["i"]) is int and type(got["f"]) is float
        assert type(got["t"]) is bool and type(got["b"]) is bytes

    def test_get_absent_is_none(self, store: ItemStore, pk: str) -> None:
        assert store.get(pk, "NOPE") is None
        assert store.get(pk, "NOPE", consistent=False) is None

    def test_returned_items_are_copies(self, store: ItemStore, pk: str) -> None:
        numbers = [1]
        store.put({"pk": pk, "sk": "A", "l": numbers})
        numbers.append(2)
        got = store.get(pk, "A")
        assert got is not None and got["l"] == [1]
        got["l"].append(3)
        assert store.get(pk, "A") == {"pk": pk, "sk": "A", "l": [1]}

    def test_put_replaces_the_whole_item(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "A", "x": 1, "y": 2})
        store.put({"pk": pk, "sk": "A", "x": 3})
        assert store.get(pk, "A") == {"pk": pk, "sk": "A", "x": 3}

    def test_put_if_absent(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "A", "v": 1}, condition=IF_ABSENT)
        with pytest.raises(ConditionFailed):
            store.put({"pk": pk, "sk": "A", "v": 2}, condition=IF_ABSENT)
        assert store.get(pk, "A") == {"pk": pk, "sk": "A", "v": 1}

    def test_put_if_exists(self, store: ItemStore, pk: str) -> None:
        with pytest.raises(ConditionFailed):
            store.put({"pk": pk, "sk": "A", "v": 1}, condition=IF_EXISTS)
        assert store.get(pk, "A") is None
        store.put({"pk": pk, "sk": "A", "v": 1})
        store.put({"pk": pk, "sk": "A", "v": 2}, condition=IF_EXISTS)
        assert store.get(pk, "A") == {"pk": pk, "sk": "A", "v": 2}

    def test_put_with_equals(self, store: ItemStore, pk: str) -> None:
        with pytest.raises(ConditionFailed):
            store.put({"pk": pk, "sk": "A", "v": 1}, condition=attr_equals(v=0))
        store.put({"pk": pk, "sk": "A", "v": 1, "state": "draft"})
        with pytest.raises(ConditionFailed):
            store.put(
                {"pk": pk, "sk": "A", "state": "sent"}, condition=attr_equals(state="sending")
            )
        with pytest.raises(ConditionFailed):
            store.put({"pk": pk, "sk": "A"}, condition=attr_equals(missing="x"))
        store.put({"pk": pk, "sk": "A", "state": "sent"}, condition=attr_equals(state="draft", v=1))
        assert store.get(pk, "A") == {"pk": pk, "sk": "A", "state": "sent"}

    def test_equals_tells_bools_from_numbers(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "A", "flag": True, "n": 1})
        with pytest.raises(ConditionFailed):
            store.put({"pk": pk, "sk": "A"}, condition=attr_equals(flag=1))
        with pytest.raises(ConditionFailed):
            store.put({"pk": pk, "sk": "A"}, condition=attr_equals(n=True))
        store.put({"pk": pk, "sk": "A", "ok": 1}, condition=attr_equals(flag=True, n=1.0))
        assert store.get(pk, "A") == {"pk": pk, "sk": "A", "ok": 1}

    def test_put_with_not_equals(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "N", "v": 1}, condition=Condition(not_equals={"v": 9}))
        store.put({"pk": pk, "sk": "A", "state": "paused"})
        with pytest.raises(ConditionFailed):
            store.put({"pk": pk, "sk": "A"}, condition=Condition(not_equals={"state": "paused"}))
        # a missing attribute is "not equal"
        store.put({"pk": pk, "sk": "A", "state": "x"}, condition=Condition(not_equals={"other": 1}))
        store.put(
            {"pk": pk, "sk": "A", "state": "y"},
            condition=Condition(exists=True, not_equals={"state": "paused"}),
        )
        assert store.get(pk, "A") == {"pk": pk, "sk": "A", "state": "y"}
        assert store.get(pk, "N") == {"pk": pk, "sk": "N", "v": 1}

    @pytest.mark.parametrize(
        "item",
        [
            {"sk": "A"},
            {"pk": "P"},
            {"pk": "", "sk": "A"},
            {"pk": "P", "sk": ""},
            {"pk": 1, "sk": "A"},
            {"pk": "P", "sk": "A", "bad": {1, 2}},
            {"pk": "P", "sk": "A", "bad": object()},
            {"pk": "P", "sk": "A", "bad": float("nan")},
            {"pk": "P", "sk": "A", "bad": float("inf")},
            {"pk": "P", "sk": "A", "big": 2**64},
            {"pk": "P", "sk": "A", "": 1},
            {"pk": "P", "sk": "A", "m": {1: "int key"}},
            {"pk": "P", "sk": "A", "ttl": "soon"},
        ],
    )
    def test_put_refuses_malformed_items(self, store: ItemStore, item: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            store.put(item)

    def test_put_refuses_a_non_dict(self, store: ItemStore) -> None:
        with pytest.raises(ValidationError):
            store.put([("pk", "P"), ("sk", "A")])  # type: ignore[arg-type]

    def test_item_size_limit(self, store: ItemStore, pk: str) -> None:
        overhead = len("pk") + len(pk) + len("sk") + len("A") + len("blob")
        # 400,000 bytes: near the limit yet under every emulator's own reckoning of it
        fits = {"pk": pk, "sk": "A", "blob": "x" * (400_000 - overhead)}
        store.put(fits)
        assert store.get(pk, "A") == fits
        with pytest.raises(LimitExceeded):
            store.put({"pk": pk, "sk": "B", "blob": b"x" * (MAX_ITEM_BYTES - overhead + 1)})
        with pytest.raises(LimitExceeded):
            store.put({"pk": pk, "sk": "C", "s": "é" * (MAX_ITEM_BYTES // 2)})
        assert store.get(pk, "B") is None and store.get(pk, "C") is None

    def test_key_size_limits(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "s" * 1024})
        with pytest.raises(LimitExceeded):
            store.put({"pk": pk, "sk": "s" * 1025})
        with pytest.raises(LimitExceeded):
            store.put({"pk": "p" * 2049, "sk": "A"})

    def test_keys_that_differ_only_in_letter_case_are_different_items(self, store: ItemStore, pk: str) -> None:
        """Keys compare byte for byte in every adapter (DynamoDB does; SQLite's default
        collation does; a case-insensitive one would not).  The audience folds the case of
        addresses into its keys itself (``domain.addresses``) and relies on exactly this:
        a prefix query or a get in one case must never find an item of another."""
        store.put({"pk": pk, "sk": "S#Eve@example.com", "n": 1})
        store.put({"pk": pk, "sk": "S#eve@example.com", "n": 2})
        store.put({"pk": pk.swapcase(), "sk": "S#eve@example.com", "n": 3})  # another partition
        assert store.get(pk, "S#Eve@example.com") == {"pk": pk, "sk": "S#Eve@example.com", "n": 1}
        assert store.get(pk, "S#eve@example.com") == {"pk": pk, "sk": "S#eve@example.com", "n": 2}
        assert store.get(pk, "S#EVE@example.com") is None
        assert store.get(pk.swapcase(), "S#eve@example.com") == {"pk": pk.swapcase(), "sk": "S#eve@example.com", "n": 3}
        assert [i["n"] for i in store.query(pk, prefix="S#e").items] == [2]
        assert [i["n"] for i in store.query(pk, prefix="S#E").items] == [1]
        assert [i["sk"] for i in store.query(pk, prefix="S#").items] == ["S#Eve@example.com", "S#eve@example.com"]
        got = store.get_many([(pk, "S#eve@example.com"), (pk, "S#EVE@EXAMPLE.COM")])
        assert [None if g is None else g["n"] for g in got] == [2, None]
        assert store.put_many([{"pk": pk, "sk": "S#EVE@example.com"}], condition=IF_ABSENT) == [True]

    # ------------------------------------------------------------ update

    def test_update_creates_and_adds(self, store: ItemStore, pk: str) -> None:
        assert store.update(pk, "C", add={"n": 2}) == {"pk": pk, "sk": "C", "n": 2}
        after = store.update(pk, "C", add={"n": 3, "f": 0.5}, set={"name": "x"})
        assert after == {"pk": pk, "sk": "C", "n": 5, "f": 0.5, "name": "x"}
        assert store.get(pk, "C") == after

    def test_update_set_and_remove(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "A", "a": 1, "b": b"x", "c": [1]})
        after = store.update(pk, "A", set={"a": {"k": "v"}, "d": None}, remove=["b", "absent"])
        assert after == {"pk": pk, "sk": "A", "a": {"k": "v"}, "c": [1], "d": None}
        assert store.get(pk, "A") == after

    def test_update_with_conditions(self, store: ItemStore, pk: str) -> None:
        with pytest.raises(ConditionFailed):
            store.update(pk, "A", add={"n": 1}, condition=IF_EXISTS)
        assert store.get(pk, "A") is None
        store.update(pk, "A", set={"state": "draft"}, condition=IF_ABSENT)
        with pytest.raises(ConditionFailed):
            store.update(pk, "A", set={"state": "x"}, condition=IF_ABSENT)
        with pytest.raises(ConditionFailed):
            store.update(pk, "A", set={"state": "sent"}, condition=attr_equals(state="sending"))
        assert store.get(pk, "A") == {"pk": pk, "sk": "A", "state": "draft"}
        after = store.update(
            pk, "A", set={"state": "sending"}, condition=attr_equals(state="draft")
        )
        assert after["state"] == "sending"
        with pytest.raises(ConditionFailed):
            store.update(
                pk, "A", add={"n": 1}, condition=Condition(not_equals={"state": "sending"})
            )

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"set": {"pk": "other"}},
            {"remove": ["sk"]},
            {"add": {"n": 1}, "set": {"n": 2}},
            {"set": {"n": 1}, "remove": ["n"]},
            {"add": {"n": "1"}},
            {"add": {"n": True}},
            {"set": {"x": {1, 2}}},
            {"set": {"ttl": 1.5}},
        ],
    )
    def test_update_refuses_malformed(
        self, store: ItemStore, pk: str, kwargs: dict[str, Any]
    ) -> None:
        with pytest.raises(ValidationError):
            store.update(pk, "A", **kwargs)
        assert store.get(pk, "A") is None

    def test_update_add_to_a_non_number(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "A", "n": "text"})
        with pytest.raises(ValidationError):
            store.update(pk, "A", add={"n": 1})
        assert store.get(pk, "A") == {"pk": pk, "sk": "A", "n": "text"}

    def test_update_size_limit(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "A", "a": "x" * 400_000})
        with pytest.raises(LimitExceeded):
            store.update(pk, "A", set={"huge": b"y" * MAX_ITEM_BYTES})
        with pytest.raises(LimitExceeded):
            store.update(pk, "A", set={"b": "y" * 10_000})
        got = store.get(pk, "A")
        assert got is not None and set(got) == {"pk", "sk", "a"}

    def test_concurrent_adds_are_atomic(self, store: ItemStore, pk: str) -> None:
        def work() -> None:
            for _ in range(20):
                store.update(pk, "COUNTER", add={"n": 1})

        threads = [threading.Thread(target=work) for _ in range(self.concurrent_writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expected = 20 * self.concurrent_writers
        assert store.get(pk, "COUNTER") == {"pk": pk, "sk": "COUNTER", "n": expected}

    # ------------------------------------------------------------ delete

    def test_delete(self, store: ItemStore, pk: str) -> None:
        store.delete(pk, "ABSENT")
        store.put({"pk": pk, "sk": "A", "state": "x"})
        with pytest.raises(ConditionFailed):
            store.delete(pk, "A", condition=attr_equals(state="y"))
        with pytest.raises(ConditionFailed):
            store.delete(pk, "ABSENT", condition=IF_EXISTS)
        assert store.get(pk, "A") is not None
        store.delete(pk, "A", condition=attr_equals(state="x"))
        assert store.get(pk, "A") is None
        store.delete(pk, "A")

    def test_delete_validates_keys(self, store: ItemStore) -> None:
        with pytest.raises(ValidationError):
            store.delete("", "A")

    # ------------------------------------------------------------ get_many

    def test_get_many_keeps_order_and_marks_absent(self, store: ItemStore, pk: str) -> None:
        other = new_pk()
        store.put({"pk": pk, "sk": "A", "v": 1})
        store.put({"pk": other, "sk": "B", "v": 2})
        keys = [(other, "B"), (pk, "X"), (pk, "A"), (other, "B")]
        assert store.get_many(keys) == [
            {"pk": other, "sk": "B", "v": 2},
            None,
            {"pk": pk, "sk": "A", "v": 1},
            {"pk": other, "sk": "B", "v": 2},
        ]
        assert store.get_many([]) == []

    def test_get_many_beyond_one_request(self, store: ItemStore, pk: str) -> None:
        pks = [pk, new_pk(), new_pk()]
        items: list[dict[str, Any]] = [
            {"pk": pks[i % 3], "sk": f"S#{i:04d}", "i": i} for i in range(230)
        ]
        store.put_many(items)
        keys = [(it["pk"], it["sk"]) for it in reversed(items)] + [(pk, "missing")]
        got = store.get_many(keys)
        assert got[:-1] == list(reversed(items))
        assert got[-1] is None

    def test_get_many_validates_keys(self, store: ItemStore, pk: str) -> None:
        with pytest.raises(ValidationError):
            store.get_many([(pk, "A"), (pk, "")])

    # ------------------------------------------------------------ query

    def _fill(self, store: ItemStore, pk: str, sks: list[str]) -> None:
        store.put_many([{"pk": pk, "sk": sk, "v": sk} for sk in sks])

    def test_query_orders_by_sort_key_and_filters_by_prefix(
        self, store: ItemStore, pk: str
    ) -> None:
        self._fill(store, pk, ["S#b", "LIST#2", "S#a", "S#c", "LIST#1", "T", "S"])
        store.put({"pk": new_pk(), "sk": "S#z"})
        page = store.query(pk)
        assert [i["sk"] for i in page.items] == ["LIST#1", "LIST#2", "S", "S#a", "S#b", "S#c", "T"]
        assert page.cursor is None
        assert [i["sk"] for i in store.query(pk, prefix="S#").items] == ["S#a", "S#b", "S#c"]
        assert [i["sk"] for i in store.query(pk, prefix="S#", reverse=True).items] == [
            "S#c",
            "S#b",
            "S#a",
        ]
        assert store.query(pk, prefix="Q").items == []
        assert store.query(new_pk()).items == []

    def test_query_start_end_inclusive(self, store: ItemStore, pk: str) -> None:
        self._fill(store, pk, [f"TS#{m:02d}" for m in range(10)] + ["A", "Z"])

        def sks(**kw: Any) -> list[str]:
            return [i["sk"] for i in store.query(pk, **kw).items]

        assert sks(start="TS#03", end="TS#05") == ["TS#03", "TS#04", "TS#05"]
        assert sks(start="TS#08") == ["TS#08", "TS#09", "Z"]
        assert sks(end="TS#01") == ["A", "TS#00", "TS#01"]
        assert sks(prefix="TS#", start="TS#08") == ["TS#08", "TS#09"]
        assert sks(prefix="TS#", end="TS#01") == ["TS#00", "TS#01"]
        assert sks(prefix="TS#", start="B", end="TS#01") == ["TS#00", "TS#01"]
        assert sks(prefix="TS#", end="ZZ", reverse=True, limit=2) == ["TS#09", "TS#08"]
        assert sks(start="TS#05", end="TS#03") == []
        assert sks(prefix="TS#", start="TS#1") == []

    def test_query_pages_with_cursor(self, store: ItemStore, pk: str) -> None:
        sks = [f"R#{i:03d}" for i in range(25)]
        self._fill(store, pk, sks)
        for reverse in (False, True):
            seen: list[str] = []
            cursor: str | None = None
            pages = 0
            while True:
                page = store.query(pk, prefix="R#", limit=10, cursor=cursor, reverse=reverse)
                assert len(page.items) <= 10
                seen += [i["sk"] for i in page.items]
                pages += 1
                cursor = page.cursor
                if cursor is None:
                    break
            assert seen == (sorted(sks, reverse=reverse))
            assert pages == 3

    def test_query_cursor_is_none_when_the_page_ends_exactly(
        self, store: ItemStore, pk: str
    ) -> None:
        self._fill(store, pk, ["A", "B", "C", "D"])
        first = store.query(pk, limit=2)
        assert [i["sk"] for i in first.items] == ["A", "B"] and first.cursor is not None
        second = store.query(pk, limit=2, cursor=first.cursor)
        assert [i["sk"] for i in second.items] == ["C", "D"]
        assert second.cursor is None

    def test_query_all_streams_every_page(self, store: ItemStore, pk: str) -> None:
        sks = [f"S#{i:04d}" for i in range(120)]
        self._fill(store, pk, sks)
        assert [i["sk"] for i in query_all(store, pk, prefix="S#", page_size=50)] == sks

    def test_query_limits_and_bad_cursor(self, store: ItemStore, pk: str) -> None:
        with pytest.raises(LimitExceeded):
            store.query(pk, limit=1001)
        store.query(pk, limit=1000)
        with pytest.raises(ValidationError):
            store.query(pk, limit=0)
        with pytest.raises(ValidationError):
            store.query(pk, cursor="not a cursor")
        with pytest.raises(ValidationError):
            store.query("")

    @settings(
        max_examples=25,
        deadline=None,
        # one property, run once per adapter subclass: that is the point of the contract
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        sks=st.sets(
            st.text(alphabet="ab#é\U0001f600Z", min_size=1, max_size=4), min_size=0, max_size=30
        ),
        limit=st.integers(min_value=1, max_value=7),
        prefix=st.sampled_from(["", "a", "b#", "é"]),
        reverse=st.booleans(),
    )
    def test_pages_concatenate_to_the_full_result(
        self, store: ItemStore, sks: set[str], limit: int, prefix: str, reverse: bool
    ) -> None:
        pk = new_pk()
        if sks:
            store.put_many([{"pk": pk, "sk": sk} for sk in sks])
        expected = sorted(
            (sk for sk in sks if sk.startswith(prefix)),
            key=lambda s: s.encode(),
            reverse=reverse,
        )
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = store.query(pk, prefix=prefix, limit=limit, cursor=cursor, reverse=reverse)
            assert len(page.items) <= limit
            seen += [i["sk"] for i in page.items]
            cursor = page.cursor
            if cursor is None:
                break
            assert len(page.items) == limit
        assert seen == expected

    # ------------------------------------------------------------ batch_write

    def test_batch_write(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "OLD"})
        puts = [{"pk": pk, "sk": f"N#{i:02d}", "i": i} for i in range(24)]
        store.batch_write(puts=puts, deletes=[(pk, "OLD")])
        assert store.get(pk, "OLD") is None
        assert store.query(pk).items == puts
        store.batch_write()

    def test_batch_write_limits(self, store: ItemStore, pk: str) -> None:
        with pytest.raises(LimitExceeded):
            store.batch_write(puts=[{"pk": pk, "sk": f"{i}"} for i in range(26)])
        with pytest.raises(LimitExceeded):
            store.batch_write(
                puts=[{"pk": pk, "sk": f"{i}"} for i in range(20)],
                deletes=[(pk, f"D{i}") for i in range(6)],
            )
        with pytest.raises(ValidationError):
            store.batch_write(puts=[{"pk": pk, "sk": "A"}], deletes=[(pk, "A")])
        with pytest.raises(ValidationError):
            store.batch_write(puts=[{"pk": pk, "sk": "A"}, {"pk": pk, "sk": "A", "v": 1}])
        with pytest.raises(LimitExceeded):
            store.batch_write(puts=[{"pk": pk, "sk": "A", "b": b"x" * MAX_ITEM_BYTES}])
        assert store.query(pk).items == []

    # ------------------------------------------------------------ put_many

    def test_put_many_unconditional(self, store: ItemStore, pk: str) -> None:
        items = [{"pk": pk, "sk": f"S#{i:03d}", "i": i} for i in range(60)]
        assert store.put_many(items) == [True] * 60
        assert list(query_all(store, pk)) == items
        assert store.put_many([]) == []

    def test_put_many_last_duplicate_wins_without_condition(
        self, store: ItemStore, pk: str
    ) -> None:
        items = [{"pk": pk, "sk": "A", "v": 1}, {"pk": pk, "sk": "A", "v": 2}]
        assert store.put_many(items) == [True, True]
        assert store.get(pk, "A") == {"pk": pk, "sk": "A", "v": 2}

    def test_put_many_if_absent_records_once(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "R#03", "v": "old"})
        items = [{"pk": pk, "sk": f"R#{i:02d}", "v": "new"} for i in range(40)]
        items.append({"pk": pk, "sk": "R#05", "v": "dup"})
        result = store.put_many(items, condition=IF_ABSENT)
        assert result == [i != 3 for i in range(40)] + [False]
        assert store.get(pk, "R#03") == {"pk": pk, "sk": "R#03", "v": "old"}
        assert store.get(pk, "R#05") == {"pk": pk, "sk": "R#05", "v": "new"}
        assert store.put_many(items[:5], condition=IF_ABSENT) == [False] * 5

    def test_put_many_with_equals(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "A", "state": "queued"})
        store.put({"pk": pk, "sk": "B", "state": "sent"})
        items = [{"pk": pk, "sk": sk, "state": "sent"} for sk in ("A", "B", "C")]
        assert store.put_many(items, condition=attr_equals(state="queued")) == [True, False, False]
        assert store.get(pk, "C") is None

    def test_put_many_validates_before_writing(self, store: ItemStore, pk: str) -> None:
        with pytest.raises(ValidationError):
            store.put_many([{"pk": pk, "sk": "A"}, {"pk": pk, "sk": "B", "bad": {1}}])
        with pytest.raises(LimitExceeded):
            store.put_many(
                [{"pk": pk, "sk": "A"}, {"pk": pk, "sk": "B", "b": b"x" * MAX_ITEM_BYTES}]
            )
        assert store.get(pk, "A") is None

    # ------------------------------------------------------------ transact

    def test_transact_applies_everything(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "DEL"})
        store.put({"pk": pk, "sk": "CHK", "state": "ok"})
        store.put({"pk": pk, "sk": "UPD", "n": 1, "gone": 1})
        store.transact(
            [
                Put({"pk": pk, "sk": "NEW", "v": b"1"}, condition=IF_ABSENT),
                Update(pk, "UPD", add={"n": 2}, set={"s": "x"}, remove=["gone"]),
                Update(pk, "CREATED", add={"n": 1}),
                Delete(pk, "DEL", condition=IF_EXISTS),
                Check(pk, "CHK", attr_equals(state="ok")),
            ]
        )
        assert store.get(pk, "NEW") == {"pk": pk, "sk": "NEW", "v": b"1"}
        assert store.get(pk, "UPD") == {"pk": pk, "sk": "UPD", "n": 3, "s": "x"}
        assert store.get(pk, "CREATED") == {"pk": pk, "sk": "CREATED", "n": 1}
        assert store.get(pk, "DEL") is None
        assert store.get(pk, "CHK") == {"pk": pk, "sk": "CHK", "state": "ok"}
        store.transact([])

    def test_transact_is_all_or_nothing(self, store: ItemStore, pk: str) -> None:
        store.put({"pk": pk, "sk": "CHK", "state": "paused"})
        store.put({"pk": pk, "sk": "EXISTS"})
        with pytest.raises(TransactionCancelled) as err:
            store.transact(
                [
                    Put({"pk": pk, "sk": "A", "v": 1}),
                    Update(pk, "B", add={"n": 1}),
                    Check(pk, "CHK", attr_equals(state="running")),
                    Put({"pk": pk, "sk": "EXISTS", "v": 2}, condition=IF_ABSENT),
                    Delete(pk, "NOPE"),
                ]
            )
        assert err.value.reasons == ["", "", "ConditionalCheckFailed", "ConditionalCheckFailed", ""]
        assert store.get(pk, "A") is None and store.get(pk, "B") is None
        assert store.get(pk, "EXISTS") == {"pk": pk, "sk": "EXISTS"}

    def test_transact_update_sets_marks_unless_one_is_set(self, store: ItemStore, pk: str) -> None:
        # The reports' exactly-once marks: several flags set on one item in a transaction,
        # on the condition that none of them is set yet (sixteen conditions at once).
        def mark(names: list[str]) -> Update:
            flags = dict.fromkeys(names, 1)
            return Update(pk, "EV", set={**flags, "ttl": 2**40}, condition=Condition(not_equals=flags))

        store.transact([mark([f"e{c}" for c in "0123456789abcdef"]), Update(pk, "N", add={"n": 16})])
        with pytest.raises(TransactionCancelled) as err:
            store.transact([Update(pk, "N", add={"n": 2}), mark(["ex", "ef"])])
        assert err.value.reasons == ["", "ConditionalCheckFailed"]
        store.transact([Update(pk, "N", add={"n": 2}), mark(["ex", "ey"])])
        item = store.get(pk, "EV")
        assert item is not None and sorted(n for n in item if n.startswith("e")) == sorted(
            [f"e{c}" for c in "0123456789abcdef"] + ["ex", "ey"])
        assert store.get(pk, "N") == {"pk": pk, "sk": "N", "n": 18}

    def test_transact_limits(self, store: ItemStore, pk: str) -> None:
        with pytest.raises(LimitExceeded):
            store.transact([Put({"pk": pk, "sk": f"{i}"}) for i in range(101)])
        with pytest.raises(ValidationError):
            store.transact([Put({"pk": pk, "sk": "A"}), Update(pk, "A", add={"n": 1})])
        with pytest.raises(ValidationError):
            store.transact([Put({"pk": pk, "sk": "B"}), Update(pk, "C", set={"sk": "x"})])
        with pytest.raises(LimitExceeded):
            store.transact([Put({"pk": pk, "sk": "D", "b": b"x" * MAX_ITEM_BYTES})])
        assert store.query(pk).items == []

    def test_transact_size_limits(self, store: ItemStore, pk: str) -> None:
        big = "x" * (MAX_ITEM_BYTES - 1000)
        # 4 MB for all the items of one transaction, each within its own 400 KB.
        with pytest.raises(LimitExceeded):
            store.transact([Put({"pk": pk, "sk": f"BIG#{i:02d}", "b": big}) for i in range(11)])
        # An update whose result outgrows the item limit fails the whole transaction.
        store.put({"pk": pk, "sk": "HALF", "a": "y" * (MAX_ITEM_BYTES // 2)})
        with pytest.raises(LimitExceeded):
            store.transact([Put({"pk": pk, "sk": "SMALL", "v": 1}),
                            Update(pk, "HALF", set={"b": "z" * (MAX_ITEM_BYTES // 2 + 100)})])
        assert [i["sk"] for i in query_all(store, pk)] == ["HALF"]

    def test_transact_refuses_a_bad_item_before_its_conditions(
        self, store: ItemStore, pk: str
    ) -> None:
        store.put({"pk": pk, "sk": "TAKEN"})
        with pytest.raises(ValidationError):
            store.transact([Put({"pk": pk, "sk": "TAKEN"}, condition=IF_ABSENT),
                            Put({"pk": pk, "sk": "NAN", "v": float("nan")})])
        with pytest.raises(ValidationError):
            store.transact([Put({"pk": pk, "sk": "TAKEN"}, condition=IF_ABSENT),
                            Put({"pk": pk, "sk": "EMPTY", "": 1})])
        assert store.get(pk, "NAN") is None and store.get(pk, "EMPTY") is None

    def test_transact_of_one_hundred(self, store: ItemStore, pk: str) -> None:
        store.transact([Update(pk, f"C#{i:03d}", add={"n": i}) for i in range(100)])
        items = list(query_all(store, pk))
        assert [i["n"] for i in items] == list(range(100))

    # ------------------------------------------------------------ ttl

    def test_expired_items_are_gone(self, store: ItemStore, pk: str) -> None:
        now = int(time.time())
        store.put({"pk": pk, "sk": "OLD", "ttl": now - 3600, "v": 1})
        store.put({"pk": pk, "sk": "NEW", "ttl": now + 3600, "v": 2})
        assert store.get(pk, "OLD") is None
        assert store.get(pk, "NEW") == {"pk": pk, "sk": "NEW", "ttl": now + 3600, "v": 2}
        assert store.get_many([(pk, "OLD"), (pk, "NEW")])[0] is None
        assert [i["sk"] for i in store.query(pk).items] == ["NEW"]
        with pytest.raises(ConditionFailed):
            store.delete(pk, "OLD", condition=IF_EXISTS)

    def test_expired_items_count_as_absent_for_writes(self, store: ItemStore, pk: str) -> None:
        past = int(time.time()) - 3600
        store.put({"pk": pk, "sk": "A", "ttl": past, "v": "old"})
        store.put({"pk": pk, "sk": "A", "v": "new"}, condition=IF_ABSENT)
        assert store.get(pk, "A") == {"pk": pk, "sk": "A", "v": "new"}

        store.put({"pk": pk, "sk": "B", "ttl": past, "n": 10, "junk": 1})
        assert store.update(pk, "B", add={"n": 1}) == {"pk": pk, "sk": "B", "n": 1}
        store.put({"pk": pk, "sk": "C", "ttl": past})
        with pytest.raises(ConditionFailed):
            store.update(pk, "C", add={"n": 1}, condition=IF_EXISTS)

        store.put({"pk": pk, "sk": "D", "ttl": past})
        assert store.put_many([{"pk": pk, "sk": "D", "v": 1}], condition=IF_ABSENT) == [True]
        store.put({"pk": pk, "sk": "E", "ttl": past, "n": 5})
        store.transact([Update(pk, "E", add={"n": 1}, condition=IF_ABSENT)])
        assert store.get(pk, "E") == {"pk": pk, "sk": "E", "n": 1}

    def test_ttl_can_be_set_by_update(self, store: ItemStore, pk: str) -> None:
        store.update(pk, "A", set={"ttl": int(time.time()) - 10})
        assert store.get(pk, "A") is None
        store.update(pk, "B", set={"v": 1})
        store.update(pk, "B", set={"ttl": int(time.time()) + 3600})
        assert store.get(pk, "B") is not None
