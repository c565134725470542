"""ItemStore: a key-value item store with DynamoDB item semantics.

Shaped after DynamoDB so that code which works on the embedded SQLite
adapter works unchanged on AWS: a partition key ``pk`` plus a sort key
``sk``, conditional puts, atomic adds, queries by sort-key prefix with an
opaque cursor, batch writes of at most 25 items, transactions of at most
100 operations, TTL and a 400 KB item limit.  Every adapter enforces these
limits, so a design that breaks them fails locally first.

Items are plain dicts.  ``pk`` and ``sk`` are strings; other attributes may
be ``str``, ``int``, ``float``, ``bool``, ``None``, ``bytes``, ``list`` or
``dict`` (nested the same way).  An item with an integer ``ttl`` attribute
(epoch seconds) is treated as gone once that time has passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Item = dict[str, Any]

MAX_BATCH_WRITE = 25
MAX_TRANSACTION = 100
MAX_ITEM_BYTES = 400 * 1024
MAX_QUERY_LIMIT = 1000


class ItemStoreError(Exception):
    """Base of every ItemStore error."""


class ConditionFailed(ItemStoreError):
    """A conditional write found the item not in the state it required."""


class TransactionCancelled(ItemStoreError):
    """A transaction was rolled back; ``reasons`` has one entry per operation ("" = fine)."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("transaction cancelled: " + ", ".join(r or "-" for r in reasons))
        self.reasons = list(reasons)


class LimitExceeded(ItemStoreError):
    """A request broke one of DynamoDB's limits (batch 25, transaction 100, item 400 KB)."""


class ValidationError(ItemStoreError):
    """A request was malformed (missing keys, unsupported value type, bad cursor)."""


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Condition:
    """A write condition, evaluated atomically with the write.

    ``exists``: True = the item must exist, False = it must not, None = no check.
    ``equals``: attribute name -> value each must equal (implies the item exists).
    ``missing_or_equals`` is not supported on purpose: keep conditions simple
    enough to map 1:1 to DynamoDB ``ConditionExpression``.
    """

    exists: bool | None = None
    equals: Mapping[str, Any] = field(default_factory=dict)
    not_equals: Mapping[str, Any] = field(default_factory=dict)


IF_ABSENT = Condition(exists=False)
IF_EXISTS = Condition(exists=True)


def attr_equals(**values: Any) -> Condition:
    """Condition: the item exists and each named attribute equals the value."""
    return Condition(exists=True, equals=values)


# ---------------------------------------------------------------- operations


@dataclass(frozen=True)
class Put:
    item: Item
    condition: Condition | None = None


@dataclass(frozen=True)
class Delete:
    pk: str
    sk: str
    condition: Condition | None = None


@dataclass(frozen=True)
class Update:
    """Atomic update: ``add`` adds numbers (missing = 0), ``set`` overwrites, ``remove`` drops."""

    pk: str
    sk: str
    add: Mapping[str, int | float] = field(default_factory=dict)
    set: Mapping[str, Any] = field(default_factory=dict)
    remove: Sequence[str] = ()
    condition: Condition | None = None


@dataclass(frozen=True)
class Check:
    """Transaction-only: a condition on an item that is not written."""

    pk: str
    sk: str
    condition: Condition


WriteOp = Put | Delete | Update | Check


@dataclass(frozen=True)
class Page:
    """One page of a query.  ``cursor`` is opaque; None means there is no more."""

    items: list[Item]
    cursor: str | None


# ---------------------------------------------------------------- the port


@runtime_checkable
class ItemStore(Protocol):
    """The port.  All methods are synchronous and safe to call from any thread."""

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        """The item, or None when absent or expired."""
        ...

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[Item | None]:
        """Items for (pk, sk) keys, in the same order (None where absent).  Any length:
        adapters split into DynamoDB's 100-key BatchGetItem requests."""
        ...

    def put(self, item: Item, *, condition: Condition | None = None) -> None:
        """Write the whole item.  Raises ConditionFailed, LimitExceeded, ValidationError."""
        ...

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
        """Atomically add to numeric attributes / set / remove; create the item if absent
        (unless the condition says otherwise).  Returns the item as it is after the update."""
        ...

    def delete(self, pk: str, sk: str, *, condition: Condition | None = None) -> None:
        """Delete (absent is fine unless a condition says otherwise)."""
        ...

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
        """Items of one partition ordered by ``sk``; ``prefix`` filters by sort-key prefix,
        ``start``/``end`` bound the sort key (inclusive).  ``limit`` is at most 1000."""
        ...

    def batch_write(self, puts: Sequence[Item] = (), deletes: Sequence[tuple[str, str]] = ()) -> None:
        """Unconditional puts and deletes, at most 25 in all, retried until all are processed.
        Not atomic as a whole.  Two operations on the same key in one batch are refused."""
        ...

    def put_many(self, items: Sequence[Item], *, condition: Condition | None = None) -> list[bool]:
        """Each item is a separate conditional put (not atomic as a whole); returns, per item,
        whether it was written.  The hot path's "record once" primitive: on DynamoDB it is
        parallel PutItem calls, on SQLite one local transaction.  Any length.

        A sequence with the attribute ``plain_items = True`` vouches that no value is None,
        NaN or infinite and no attribute name is empty (the CSV import builds such items
        itself); an adapter may then skip scanning for those cases.  Keys, TTL, size and
        types are checked either way."""
        ...

    def transact(self, ops: Sequence[WriteOp]) -> None:
        """All or nothing, at most 100 operations on distinct items.
        Raises TransactionCancelled with a reason per operation."""
        ...

    def close(self) -> None:
        ...


def chunks(seq: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Split an iterable into lists of at most ``size`` (e.g. for batch_write's 25)."""
    buf: list[Any] = []
    for x in seq:
        buf.append(x)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def query_all(store: ItemStore, pk: str, *, prefix: str = "", page_size: int = 1000) -> Iterable[Item]:
    """Stream every item of a partition page by page (never loads the partition at once)."""
    cursor: str | None = None
    while True:
        page = store.query(pk, prefix=prefix, limit=page_size, cursor=cursor)
        yield from page.items
        cursor = page.cursor
        if cursor is None:
            return
