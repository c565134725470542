"""Report item keys: one partition per campaign report, a few sort-key families.

``STATS`` holds the send lifecycle (status, planned, per-batch outcomes: written once
per batch, so never hot).  Per-recipient events (opens, clicks, feedback) add to one
of ``SHARDS`` items ``STATS#nn`` chosen by the recipient's address, so concurrent
consumers rarely touch the same item; a read sums them (one query, ``SHARDS + 1``
items).  ``U#{kind}#{email}`` markers make unique counts exact and are what the
recipient exports stream.
"""

from __future__ import annotations

import zlib

SHARDS = 16
TS_SHARDS = 4  # per-minute items are read in ranges, so fewer shards keep reads small
UNMAPPED = "_unmapped"  # the report of events that could not be tied to a campaign

STATS = "STATS"
SEEN = "SEEN#"
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
COMPLAINT = "complaint"
UNSUB = "unsub"


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
