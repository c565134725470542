"""Delivery's own items (it never reads another service's)."""

from __future__ import annotations

import zlib

from lunamail.domain.addresses import mailbox_key

RECORD_SHARDS = 16  # send records spread over partitions so no partition gets hot
STATS_SHARDS = 8  # counters spread over items so concurrent batches rarely collide


def campaign_pk(account: str, campaign: str) -> str:
    return f"A#{account}#D#{campaign}"


def record_pk(account: str, campaign: str, email: str) -> str:
    shard = zlib.crc32(mailbox_key(email).encode("utf-8")) % RECORD_SHARDS
    return f"A#{account}#D#{campaign}#{shard}"


def record_sk(email: str) -> str:
    """One record per mailbox (case-insensitive): case variants of one address on two
    lists of a campaign are one recipient, mailed once."""
    return f"R#{mailbox_key(email)}"


def record_key(account: str, campaign: str, email: str) -> tuple[str, str]:
    return record_pk(account, campaign, email), record_sk(email)


META = "META"
CTRL = "CTRL"  # the operator's control state (sending / paused / cancelled), read while sending
HEALTH = "HEALTH"  # whether the send is stalled (the relay refuses, times out, defers everything)


def stats_sk(token: str) -> str:
    return f"STATS#{zlib.crc32(token.encode('utf-8')) % STATS_SHARDS}"


def all_stats_sks() -> list[str]:
    return [f"STATS#{i}" for i in range(STATS_SHARDS)]


def page_sk(seq: int) -> str:
    return f"PAGE#{seq:09d}"


def park_sk(batch: str) -> str:
    return f"PARK#{batch}"


def lease_sk(batch: str) -> str:
    return f"LEASE#{batch}"
