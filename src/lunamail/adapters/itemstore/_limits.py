"""DynamoDB's limits, checked the same way by every ItemStore adapter.

Kept in one module so that a design which breaks a limit fails on the embedded
SQLite store exactly as it would on AWS, with the same exception.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lunamail.ports.itemstore import (
    MAX_BATCH_WRITE,
    MAX_ITEM_BYTES,
    MAX_QUERY_LIMIT,
    MAX_TRANSACTION,
    Check,
    Delete,
    LimitExceeded,
    Put,
    Update,
    ValidationError,
    WriteOp,
)

MAX_PK_BYTES = 2048
MAX_SK_BYTES = 1024
MAX_DEPTH = 32
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
# DynamoDB's number range; floats outside it are refused rather than rounded.
FLOAT_MAX = 9.9999999999999999e125
FLOAT_MIN = 1e-130
KEY_ATTRS = frozenset(("pk", "sk"))
TTL_ATTR = "ttl"


def check_key(pk: Any, sk: Any) -> tuple[str, str]:
    """Key attributes are non-empty strings within DynamoDB's key size limits."""
    if not isinstance(pk, str) or not isinstance(sk, str):
        raise ValidationError("pk and sk must be strings")
    if not pk or not sk:
        raise ValidationError("pk and sk must not be empty")
    if len(pk) > MAX_PK_BYTES // 4 and len(pk.encode()) > MAX_PK_BYTES:
        raise LimitExceeded(f"pk is longer than {MAX_PK_BYTES} bytes")
    if len(sk) > MAX_SK_BYTES // 4 and len(sk.encode()) > MAX_SK_BYTES:
        raise LimitExceeded(f"sk is longer than {MAX_SK_BYTES} bytes")
    return pk, sk


def _int_size(value: int) -> int:
    if -100 < value < 100:  # at most two digits (counters, flags, marks): the common case
        return 2
    if value < INT_MIN or value > INT_MAX:
        raise ValidationError("integer outside the 64-bit range")
    digits = str(value).lstrip("-").rstrip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def _float_size(value: float) -> int:
    if not math.isfinite(value):
        raise ValidationError("NaN and infinity are not storable")
    magnitude = abs(value)
    if magnitude > FLOAT_MAX or (magnitude and magnitude < FLOAT_MIN):
        raise ValidationError("number outside DynamoDB's range")
    mantissa = repr(magnitude).split("e")[0].replace(".", "").strip("0") or "0"
    return (len(mantissa) + 1) // 2 + 1


def value_size(value: Any, depth: int = 0) -> int:
    """Size of one value as DynamoDB counts it; raises ValidationError on a bad type.

    Dispatches on the exact type first: this walk runs for every written item.
    """
    t = type(value)
    if t is str:
        return len(value) if value.isascii() else len(value.encode())
    if t is int:
        return _int_size(value)
    if value is None or t is bool:
        return 1
    if t is float:
        return _float_size(value)
    if t is dict or t is list:
        if depth >= MAX_DEPTH:
            raise ValidationError(f"values nest deeper than {MAX_DEPTH} levels")
        if t is list:
            return 3 + sum([value_size(v, depth + 1) for v in value]) + len(value)
        return 3 + item_size(value, depth + 1) + len(value)
    # Subclasses (str enums, int enums, tuples) are stored as their base type.
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, int):
        return _int_size(int(value))
    if isinstance(value, float):
        return _float_size(float(value))
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, tuple):
        return value_size(list(value), depth)
    raise ValidationError(f"unsupported value type {type(value).__name__}")


def item_size(item: Mapping[str, Any], depth: int = 0) -> int:
    """Attribute-name lengths plus value sizes, as DynamoDB counts an item."""
    total = 0
    try:
        for name, value in item.items():
            if not name or name[0] == "\x00":
                raise ValidationError(
                    "attribute names must be non-empty and must not start with NUL"
                )
            total += (len(name) if name.isascii() else len(name.encode())) + value_size(
                value, depth
            )
    except (TypeError, AttributeError) as exc:
        raise ValidationError("attribute names must be strings") from exc
    except ValidationError as exc:
        raise ValidationError(f"{exc} (attribute {name!r})") from None
    return total


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name or name[0] == "\x00":
        raise ValidationError(
            f"bad attribute name {name!r}: non-empty strings not starting with NUL"
        )


def check_ttl(value: Any) -> None:
    """``ttl`` is epoch seconds as an integer (or None), so expiry means the same everywhere."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValidationError("ttl must be an integer (epoch seconds)")


def check_item(item: Any) -> tuple[str, str]:
    """Validate a whole item for a put; returns its key."""
    return _sized_item(item)[0]


def _sized_item(item: Any) -> tuple[tuple[str, str], int]:
    """:func:`check_item` that also returns the item's size (one walk, not two)."""
    if not isinstance(item, dict):
        raise ValidationError("an item must be a dict")
    pk, sk = check_key(item.get("pk"), item.get("sk"))
    if TTL_ATTR in item:
        check_ttl(item[TTL_ATTR])
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        raise LimitExceeded(f"item {pk!r}/{sk!r} is {size} bytes; the limit is {MAX_ITEM_BYTES}")
    return (pk, sk), size


def check_result_size(item: Mapping[str, Any]) -> None:
    """After an update: the resulting item must still fit."""
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        raise LimitExceeded(f"updated item is {size} bytes; the limit is {MAX_ITEM_BYTES}")


def check_update(add: Mapping[str, Any], sets: Mapping[str, Any], remove: Sequence[str]) -> None:
    """Keys cannot change, each attribute appears once, ``add`` takes numbers only."""
    seen: set[str] = set()
    for name in (*add.keys(), *sets.keys(), *remove):
        _check_name(name)
        if name in KEY_ATTRS:
            raise ValidationError("an update cannot change pk or sk")
        if name in seen:
            raise ValidationError(f"attribute {name!r} appears twice in one update")
        seen.add(name)
    for name, value in add.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"add {name!r}: only numbers can be added")
        value_size(value)
    size = 0
    for name, value in sets.items():
        if name == TTL_ATTR:
            check_ttl(value)
        size += len(name.encode()) + value_size(value)
    if size > MAX_ITEM_BYTES:
        raise LimitExceeded(f"update sets {size} bytes; the item limit is {MAX_ITEM_BYTES}")


def check_batch(puts: Sequence[Any], deletes: Sequence[tuple[str, str]]) -> None:
    """At most 25 operations on distinct keys."""
    if len(puts) + len(deletes) > MAX_BATCH_WRITE:
        raise LimitExceeded(f"a batch write takes at most {MAX_BATCH_WRITE} operations")
    keys = [check_item(item) for item in puts]
    for pk, sk in deletes:
        check_key(pk, sk)
        keys.append((pk, sk))
    if len(set(keys)) != len(keys):
        raise ValidationError("a batch write cannot touch the same key twice")


def op_key(op: WriteOp) -> tuple[str, str]:
    if isinstance(op, Put):
        return op.item.get("pk"), op.item.get("sk")  # type: ignore[return-value]
    return op.pk, op.sk


def check_transaction(ops: Sequence[WriteOp]) -> None:
    """At most 100 operations on distinct items, 4 MB in all, every item valid."""
    if len(ops) > MAX_TRANSACTION:
        raise LimitExceeded(f"a transaction takes at most {MAX_TRANSACTION} operations")
    keys: list[tuple[str, str]] = []
    total = 0
    for op in ops:
        if isinstance(op, Put):
            key, size = _sized_item(op.item)
            keys.append(key)
            total += size
        elif isinstance(op, Update):
            check_key(op.pk, op.sk)
            check_update(op.add, op.set, op.remove)
            keys.append((op.pk, op.sk))
        elif isinstance(op, Delete | Check):
            check_key(op.pk, op.sk)
            keys.append((op.pk, op.sk))
        else:
            raise ValidationError(f"unknown transaction operation {type(op).__name__}")
    if len(set(keys)) != len(keys):
        raise ValidationError("a transaction cannot touch the same item twice")
    if total > MAX_TRANSACTION_BYTES:
        raise LimitExceeded("a transaction carries at most 4 MB of items")


def check_query_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError("limit must be a positive integer")
    if limit > MAX_QUERY_LIMIT:
        raise LimitExceeded(f"limit is at most {MAX_QUERY_LIMIT}")


def distinct_keys(keys: Iterable[tuple[str, str]]) -> bool:
    seen: set[tuple[str, str]] = set()
    for key in keys:
        if key in seen:
            return False
        seen.add(key)
    return True
