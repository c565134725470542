"""Item semantics shared by the local adapters (SQLite, memory).

Encoding, expiry, condition evaluation, update application, sort-key bounds
and cursors live here once, so both local stores behave identically and the
DynamoDB adapter can reuse the cursor and bounds rules.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from lunamail.ports.itemstore import MAX_ITEM_BYTES, Condition, Item, ValidationError

from . import _limits
from ._limits import TTL_ATTR, check_result_size

_BYTES_TAG = "\x00b"
_TAG_MARK = b'"\\u0000b"'
_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {_BYTES_TAG: base64.b64encode(value).decode("ascii")}
    raise TypeError(f"unsupported value type {type(value).__name__}")


def encode(attrs: Mapping[str, Any], *, compact: bool = True) -> bytes:
    """orjson with bytes as a tagged map (names starting with NUL are refused upstream).

    orjson hands back its bytes inside a buffer of at least 4 KB; a store that keeps the
    value (a list of pending rows, the memory store) would pay 4 KB per item, so by
    default the value is copied to its exact size.  ``compact=False`` skips the copy for
    a value that is written and dropped at once.
    """
    try:
        raw = orjson.dumps(attrs, default=_default, option=_OPTS)
    except TypeError as exc:
        raise ValidationError(str(exc)) from exc
    return memoryview(raw).tobytes() if compact else raw


# orjson output this short cannot exceed the item limit: a DynamoDB size is at most
# twice the JSON length (a one-digit number in a list: 3 bytes vs 2 characters).
_FAST_BYTES = MAX_ITEM_BYTES // 4
_FAST_KEY = min(_limits.MAX_PK_BYTES, _limits.MAX_SK_BYTES) // 4


# A sequence of items handed to ``put_many`` may vouch for its items by setting this
# attribute to True: every item was built by the caller from values of its own making,
# holds no None, NaN or infinity at any level, and names every attribute (nested ones
# too) with a non-empty string that does not start with NUL.  The scans of the encoded
# form for those cases are then skipped; keys, ttl, size and types are still checked.
PLAIN_ITEMS_ATTR = "plain_items"


def vouched(items: object) -> bool:
    """True when ``items`` vouches for its items (see ``PLAIN_ITEMS_ATTR``)."""
    return getattr(items, PLAIN_ITEMS_ATTR, False) is True


def encode_item(item: Any, *, compact: bool = True, plain: bool = False) -> tuple[str, str, bytes]:
    """Validate and encode an item for a put; returns (pk, sk, encoded).

    The full DynamoDB-style walk is skipped when the encoded form proves the item
    is small and holds nothing orjson would accept but DynamoDB would not (NaN is
    written as null, so any null sends the item down the slow path).  Nesting depth
    is not checked on this path.  Keys are checked inline when plainly short.
    ``plain`` (an item its caller vouches for, see ``PLAIN_ITEMS_ATTR``) skips the
    scans for null and for an empty attribute name.
    """
    if type(item) is not dict:
        return _slow_encode(item, compact)
    pk = item.get("pk")
    sk = item.get("sk")
    if (
        type(pk) is not str
        or type(sk) is not str
        or not pk
        or not sk
        or len(pk) > _FAST_KEY
        or len(sk) > _FAST_KEY
    ):
        pk, sk = _limits.check_key(pk, sk)
    if TTL_ATTR in item:
        _limits.check_ttl(item[TTL_ATTR])
    raw = encode(item, compact=compact)
    # The NUL test looks for a backslash first: one memchr, where the full pattern is a
    # slower substring search and escapes are rare.
    if (
        len(raw) > _FAST_BYTES
        or (b"\\" in raw and b'"\\u0000' in raw)
        or (not plain and (b"null" in raw or b'"":' in raw))
    ):
        _limits.check_item(item)
    return pk, sk, raw


def _slow_encode(item: Any, compact: bool) -> tuple[str, str, bytes]:
    pk, sk = _limits.check_item(item)
    return pk, sk, encode(item, compact=compact)


class BodyEncoder:
    """Validates items like ``encode_item`` and encodes them without ``pk`` and ``sk``.

    A store that keeps the key in columns of its own need not repeat it in every
    value.  The key is cut off orjson's output, not left out of a copy of the item:
    an item whose first attributes are ``pk`` then ``sk`` (every item built as a
    literal) encodes as ``{"pk":P,"sk":S,...``, so the body is ``{`` plus what
    follows.  The ``{"pk":P,"sk":`` head is kept per partition key.
    """

    __slots__ = ("_heads",)

    def __init__(self) -> None:
        self._heads: dict[str, bytes] = {}

    def _head(self, pk: str) -> bytes:
        head = self._heads.get(pk)
        if head is None:
            if len(self._heads) >= 4096:
                self._heads.clear()
            head = self._heads[pk] = b'{"pk":' + orjson.dumps(pk) + b',"sk":'
        return head

    def encode(self, item: Any, plain: bool = False) -> tuple[str, str, bytes, int | None]:
        """(pk, sk, body, ttl) of a valid item; raises like ``encode_item`` (``plain``: see
        there)."""
        pk, sk, raw = encode_item(item, compact=False, plain=plain)
        head = self._head(pk) + orjson.dumps(sk)
        n = len(head)
        if raw.startswith(head):
            # ``}`` after the key: the key was the whole item.  A bytes slice plus one
            # concatenation is cheaper than going through a memoryview.
            body = b"{" + raw[n + 1 :] if raw[n] == 44 else b"{}"  # 44: ","
        else:
            body = encode({k: v for k, v in item.items() if k != "pk" and k != "sk"})
        ttl = item.get(TTL_ATTR)
        if ttl is not None and type(ttl) is not int:
            ttl = ttl_of(item)
        return pk, sk, body, ttl


def decode_body(pk: str, sk: str, raw: bytes) -> dict[str, Any]:
    """Inverse of ``BodyEncoder.encode``; also reads a body that still holds its key."""
    data: dict[str, Any] = orjson.loads(raw)
    if _TAG_MARK in raw:
        data = {k: _untag(v) for k, v in data.items()}
    return {"pk": pk, "sk": sk, **data}


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _BYTES_TAG in value:
            return base64.b64decode(value[_BYTES_TAG])
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def decode(raw: bytes) -> dict[str, Any]:
    """Inverse of ``encode``; walks the value only when it holds bytes."""
    data: dict[str, Any] = orjson.loads(raw)
    if _TAG_MARK in raw:
        data = {k: _untag(v) for k, v in data.items()}
    return data


def ttl_of(item: Mapping[str, Any]) -> int | None:
    ttl = item.get(TTL_ATTR)
    if isinstance(ttl, int) and not isinstance(ttl, bool):
        return ttl
    return None


def is_expired(item: Mapping[str, Any], now: int) -> bool:
    """An item is gone once its integer ``ttl`` lies before the current second."""
    ttl = ttl_of(item)
    return ttl is not None and ttl < now


# ---------------------------------------------------------------- comparison


def same(a: Any, b: Any) -> bool:
    """Equality as DynamoDB sees it: bools are not numbers, str is not bytes."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, bytes | bytearray) and isinstance(b, bytes | bytearray):
        return bytes(a) == bytes(b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if type(a) is not type(b) and not (isinstance(a, str) and isinstance(b, str)):
        return False
    return bool(a == b)


def condition_holds(existing: Mapping[str, Any] | None, cond: Condition | None) -> bool:
    """``existing`` is the live item (None when absent or expired)."""
    if cond is None:
        return True
    if cond.exists is True and existing is None:
        return False
    if cond.exists is False and existing is not None:
        return False
    if cond.equals:
        if existing is None:
            return False
        for name, value in cond.equals.items():
            if name not in existing or not same(existing[name], value):
                return False
    if cond.not_equals and existing is not None:
        for name, value in cond.not_equals.items():
            if name in existing and same(existing[name], value):
                return False
    return True


def apply_update(
    existing: Mapping[str, Any] | None,
    pk: str,
    sk: str,
    add: Mapping[str, int | float],
    set: Mapping[str, Any],
    remove: Sequence[str],
) -> Item:
    """The item after an update (validated inputs); raises ValidationError on add to a non-number."""
    item: Item = dict(existing) if existing is not None else {"pk": pk, "sk": sk}
    for name, delta in add.items():
        current = item.get(name, 0)
        if isinstance(current, bool) or not isinstance(current, int | float):
            raise ValidationError(f"add {name!r}: the stored value is not a number")
        item[name] = current + delta
    item.update(set)
    for name in remove:
        item.pop(name, None)
    check_result_size(item)
    return item


# ---------------------------------------------------------------- queries


@dataclass(frozen=True)
class Bounds:
    """Sort-key range of a query: ``lo``..``hi`` inclusive, below ``below`` (exclusive)."""

    prefix: str
    lo: str | None
    hi: str | None
    below: str | None

    def empty(self) -> bool:
        top = self.hi
        if self.lo is None:
            return False
        if top is not None and self.lo > top:
            return True
        return self.below is not None and self.lo >= self.below

    def matches(self, sk: str) -> bool:
        return (
            sk.startswith(self.prefix)
            and (self.lo is None or sk >= self.lo)
            and (self.hi is None or sk <= self.hi)
            and (self.below is None or sk < self.below)
        )


def successor(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (None if none)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def bounds(prefix: str, start: str | None, end: str | None) -> Bounds:
    if not isinstance(prefix, str):
        raise ValidationError("prefix must be a string")
    lo = start
    if prefix and (lo is None or lo < prefix):
        lo = prefix
    return Bounds(prefix, lo, end, successor(prefix) if prefix else None)


def encode_cursor(sk: str) -> str:
    return "c1" + base64.urlsafe_b64encode(sk.encode()).decode("ascii")


def decode_cursor(cursor: str) -> str:
    """The last sort key of the previous page; ValidationError if the cursor is not ours."""
    if not isinstance(cursor, str) or not cursor.startswith("c1"):
        raise ValidationError("bad cursor")
    try:
        return base64.urlsafe_b64decode(cursor[2:].encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise ValidationError("bad cursor") from exc
