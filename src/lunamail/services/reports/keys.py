"""Report item keys: one partition per campaign report, a few sort-key families.

``STATS`` holds the send lifecycle (status, planned, per-batch outcomes: written once
per batch, so never hot).  Per-recipient events (opens, clicks, feedback) add to one
of ``SHARDS`` items ``STATS#nn`` chosen by the recipient's address, so concurrent
consumers rarely touch the same item; a read sums them (one query, ``SHARDS + 1``
items).  ``U#{kind}#{email}`` markers make unique counts exact and are what the
recipient exports stream.  ``EV#…`` items remember which tracking events were counted,
sixteen event ids to an item (see :func:`event_mark`).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from typing import Any

SHARDS = 16
TS_SHARDS = 4  # per-minute items are read in ranges, so fewer shards keep reads small
UNMAPPED = "_unmapped"  # the report of events that could not be tied to a campaign

STATS = "STATS"
SEEN = "SEEN#"  # one item per counted page/batch
EVENTS = "EV#"
TS = "TS#"
LINK = "LINK#"

# marker kinds (U#{kind}#{email})
SENT = "sent"
OPEN = "open"
OPEN_MACHINE = "mopen"
CLICK = "click"
CLICK_MACHINE = "mclick"
DELIVERED = "delivered"
BOUNCE_HARD = "bounce-hard"
BOUNCE_SOFT = "bounce-soft"
BOUNCE_SENDER = "bounce-sender"
COMPLAINT_SOURCE = "csrc|"  # shard counters csrc|{source}: complaints by where they came from
REJECTED = "rej|"  # shard counters rej|{domain} and rej|{domain}|{status} of sender-side bounces
COMPLAINT = "complaint"
UNSUB = "unsub"


def event_mark(event_id: str) -> tuple[str, str]:
    """``(sk, attribute)`` recording that ``event_id`` was counted: the id without its last
    character names the item, that character the attribute (``e`` + it, never a key name).

    Ids of one producer are a prefix and a hex counter, so sixteen consecutive events share
    an item: a batch of 200 events writes ~13 small items instead of 200, and fits one
    transaction.  Any other id works too (id = item name + attribute letter, one to one)."""
    return f"{EVENTS}{event_id[:-1]}", f"e{event_id[-1:]}"


def marked_events(sk: str, item: Mapping[str, Any]) -> Iterator[str]:
    """The event ids an ``EV#`` item records (the inverse of :func:`event_mark`)."""
    group = sk[len(EVENTS):]
    return (group + name[1:] for name, value in item.items() if value == 1 and name[:1] == "e")


def report_pk(account: str, campaign: str) -> str:
    """The report partition; events without a campaign land in the account's unmapped one."""
    return f"A#{account}#R#{campaign or UNMAPPED}"


def shard_of(email: str, shards: int = SHARDS) -> int:
    """Stable shard of an address (crc32: same in every process and on every platform)."""
    return zlib.crc32(email.encode("utf-8")) % shards


def shard_sk(n: int) -> str:
    return f"{STATS}#{n:02d}"


def marker_prefix(kind: str) -> str:
    return f"U#{kind}#"


def marker_sk(kind: str, email: str) -> str:
    return f"U#{kind}#{email}"


def link_marker_sk(link: int, email: str) -> str:
    return f"U#link#{link:04d}#{email}"


def link_sk(link: int) -> str:
    """Zero-padded so links list in template order."""
    return f"{LINK}{link:04d}"


def link_attrs(link: int) -> tuple[str, str]:
    """Shard attributes holding a link's (total, unique) human clicks."""
    return f"link_{link}_total", f"link_{link}_unique"


def minute_of(at: float) -> int:
    return int(at // 60) * 60


def ts_sk(minute: int, shard: int | None = None) -> str:
    """``TS#{minute}`` (send outcomes, per batch) or ``TS#{minute}#{k}`` (sharded events)."""
    base = f"{TS}{minute:012d}"
    return base if shard is None else f"{base}#{shard}"
