"""MemoryItemStore: an in-process ItemStore for unit tests.

Items are kept encoded exactly as the SQLite store keeps them, so values
round-trip the same way (tuples become lists, bytes stay bytes) and callers
can never mutate a stored item through a reference they hold.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from lunamail.ports.clock import Clock, SystemClock
from lunamail.ports.itemstore import (
    Check,
    Condition,
    ConditionFailed,
    Delete,
    Item,
    Page,
    Put,
    TransactionCancelled,
    Update,
    ValidationError,
    WriteOp,
)

from . import _limits
from ._logic import (
    apply_update,
    bounds,
    condition_holds,
    decode,
    decode_cursor,
    encode,
    encode_cursor,
    encode_item,
    ttl_of,
)

_Stored = tuple[bytes, int | None]


class MemoryItemStore:
    """ItemStore in a dict; one lock makes every operation atomic."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._parts: dict[str, dict[str, _Stored]] = {}
        self._order: dict[str, list[str]] = {}  # sorted sort keys per partition

    # ------------------------------------------------------------ internals

    def _now(self) -> int:
        return int(self._clock.now())

    def _live(self, pk: str, sk: str, now: int) -> Item | None:
        stored = self._parts.get(pk, {}).get(sk)
        if stored is None or (stored[1] is not None and stored[1] < now):
            return None
        return decode(stored[0])

    def _store(self, pk: str, sk: str, raw: bytes, ttl: int | None) -> None:
        part = self._parts.setdefault(pk, {})
        if sk not in part:
            bisect.insort(self._order.setdefault(pk, []), sk)
        part[sk] = (raw, ttl)

    def _drop(self, pk: str, sk: str) -> None:
        part = self._parts.get(pk)
        if part is None or part.pop(sk, None) is None:
            return
        order = self._order[pk]
        del order[bisect.bisect_left(order, sk)]
        if not part:
            del self._parts[pk], self._order[pk]

    def _write_item(self, item: Item) -> None:
        self._store(item["pk"], item["sk"], encode(item), ttl_of(item))

    # ------------------------------------------------------------ reads

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        _limits.check_key(pk, sk)
        with self._lock:
            return self._live(pk, sk, self._now())

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[Item | None]:
        for pk, sk in keys:
            _limits.check_key(pk, sk)
        with self._lock:
            now = self._now()
            return [self._live(pk, sk, now) for pk, sk in keys]

    def query(
        self,
        pk: str,
        *,
        prefix: str = "",
        start: str | None = None,
        end: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> Page:
        _limits.check_query_limit(limit)
        if not isinstance(pk, str) or not pk:
            raise ValidationError("pk must be a non-empty string")
        rng = bounds(prefix, start, end)
        after = decode_cursor(cursor) if cursor is not None else None
        with self._lock:
            now = self._now()
            order = self._order.get(pk, [])
            if reverse:
                stop = len(order) if after is None else bisect.bisect_left(order, after)
                candidates = (order[i] for i in range(stop - 1, -1, -1))
            else:
                begin = 0 if after is None else bisect.bisect_right(order, after)
                if rng.lo is not None:
                    begin = max(begin, bisect.bisect_left(order, rng.lo))
                candidates = (order[i] for i in range(begin, len(order)))
            items: list[Item] = []
            more = False
            for sk in candidates:
                if not rng.matches(sk):
                    continue
                item = self._live(pk, sk, now)
                if item is None:
                    continue
                if len(items) == limit:
                    more = True
                    break
                items.append(item)
        return Page(items, encode_cursor(items[-1]["sk"]) if more else None)

    # ------------------------------------------------------------ writes

    def put(self, item: Item, *, condition: Condition | None = None) -> None:
        pk, sk, raw = encode_item(item)
        with self._lock:
            if condition is not None and not condition_holds(
                self._live(pk, sk, self._now()), condition
            ):
                raise ConditionFailed(f"condition failed for {pk!r}/{sk!r}")
            self._store(pk, sk, raw, ttl_of(item))

    def update(
        self,
        pk: str,
        sk: str,
        *,
        add: Mapping[str, int | float] | None = None,
        set: Mapping[str, Any] | None = None,
        remove: Sequence[str] = (),
        condition: Condition | None = None,
    ) -> Item:
        add, set = add or {}, set or {}
        _limits.check_key(pk, sk)
        _limits.check_update(add, set, remove)
        with self._lock:
            existing = self._live(pk, sk, self._now())
            if not condition_holds(existing, condition):
                raise ConditionFailed(f"condition failed for {pk!r}/{sk!r}")
            item = apply_update(existing, pk, sk, add, set, remove)
            self._write_item(item)
        return item

    def delete(self, pk: str, sk: str, *, condition: Condition | None = None) -> None:
        _limits.check_key(pk, sk)
        with self._lock:
            if condition is not None and not condition_holds(
                self._live(pk, sk, self._now()), condition
            ):
                raise ConditionFailed(f"condition failed for {pk!r}/{sk!r}")
            self._drop(pk, sk)

    def batch_write(
        self, puts: Sequence[Item] = (), deletes: Sequence[tuple[str, str]] = ()
    ) -> None:
        _limits.check_batch(puts, deletes)
        with self._lock:
            for item in puts:
                self._write_item(item)
            for pk, sk in deletes:
                self._drop(pk, sk)

    def put_many(self, items: Sequence[Item], *, condition: Condition | None = None) -> list[bool]:
        rows = [(*encode_item(item), ttl_of(item)) for item in items]
        result: list[bool] = []
        with self._lock:
            now = self._now()
            for pk, sk, raw, ttl in rows:
                ok = condition is None or condition_holds(self._live(pk, sk, now), condition)
                if ok:
                    self._store(pk, sk, raw, ttl)
                result.append(ok)
        return result

    def transact(self, ops: Sequence[WriteOp]) -> None:
        _limits.check_transaction(ops)
        with self._lock:
            now = self._now()
            current = [self._live(*_limits.op_key(op), now) for op in ops]
            reasons = [
                "" if condition_holds(cur, op.condition) else "ConditionalCheckFailed"
                for op, cur in zip(ops, current, strict=True)
            ]
            if any(reasons):
                raise TransactionCancelled(reasons)
            results: list[Item | None] = []
            for op, cur in zip(ops, current, strict=True):  # compute first: all or nothing
                if isinstance(op, Update):
                    results.append(apply_update(cur, op.pk, op.sk, op.add, op.set, op.remove))
                else:
                    results.append(None)
            for op, new in zip(ops, results, strict=True):
                if isinstance(op, Put):
                    self._write_item(op.item)
                elif isinstance(op, Update):
                    assert new is not None
                    self._write_item(new)
                elif isinstance(op, Delete):
                    self._drop(op.pk, op.sk)
                else:
                    assert isinstance(op, Check)

    def close(self) -> None:
        """Nothing to release."""
