"""The ItemStore contract on SqliteItemStore (a real file per test)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunamail.adapters.itemstore.sqlite import SqliteItemStore
from lunamail.ports.itemstore import MAX_ITEM_BYTES, ItemStore, LimitExceeded, query_all

from .itemstore_contract import ItemStoreContract


class TestSqliteItemStore(ItemStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ItemStore]:
        store = SqliteItemStore(tmp_path / "items.db")
        yield store
        store.close()


def _hammer(path: str, worker: int, rounds: int) -> list[int]:
    """Runs in a child process: atomic adds plus conditional puts on overlapping keys."""
    from lunamail.ports.itemstore import IF_ABSENT

    store = SqliteItemStore(path)
    won: list[int] = []
    for i in range(rounds):
        store.update("P", "COUNTER", add={"n": 1, f"w{worker}": 1})
        try:
            store.put({"pk": "P", "sk": f"K#{i:04d}", "by": worker}, condition=IF_ABSENT)
            won.append(i)
        except Exception as exc:
            if type(exc).__name__ != "ConditionFailed":
                raise
        if i % 50 == 0:
            written = store.put_many(
                [{"pk": "P", "sk": f"M#{i + j:04d}", "by": worker} for j in range(50)],
                condition=IF_ABSENT,
            )
            won.extend(10_000 + i + j for j, ok in enumerate(written) if ok)
    store.close()
    return won


def test_two_processes_share_one_file_safely(tmp_path: Path) -> None:
    """Separate processes on one file: every add counts, every key is written exactly once."""
    path = str(tmp_path / "shared.db")
    SqliteItemStore(path).close()
    rounds = 500
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_hammer, [(path, 0, rounds), (path, 1, rounds)])
    store = SqliteItemStore(path)
    counter = store.get("P", "COUNTER")
    assert counter == {"pk": "P", "sk": "COUNTER", "n": 2 * rounds, "w0": rounds, "w1": rounds}
    wins = sorted(results[0] + results[1])
    assert wins == sorted(set(wins))  # nobody wrote a key the other had written
    keys = [i for i in wins if i < 10_000]
    assert keys == list(range(rounds))
    owners = {i["sk"]: i["by"] for i in query_all(store, "P", prefix="K#")}
    for worker, won in enumerate(results):
        for i in won:
            if i < 10_000:
                assert owners[f"K#{i:04d}"] == worker
    assert sum(1 for _ in query_all(store, "P", prefix="M#")) == len(wins) - rounds
    store.close()


def test_item_size_is_counted_like_dynamodb(tmp_path: Path) -> None:
    """The exact 400 KB boundary (emulators only approximate it, so it is checked here)."""
    store = SqliteItemStore(tmp_path / "size.db")
    base = {"pk": "P", "sk": "S", "n": 12345, "m": {"k": [True, None]}}
    # pk 2+1, sk 2+1, n 1+(3+1), m 1+(3 + k 1 + (3 + (1+1) + (1+1)) + 1)
    fixed = 3 + 3 + 5 + 1 + 3 + 1 + 7 + 1
    blob = MAX_ITEM_BYTES - fixed - len("blob")
    store.put({**base, "blob": b"x" * blob})
    with pytest.raises(LimitExceeded):
        store.put({**base, "blob": b"x" * (blob + 1)})
    store.close()
