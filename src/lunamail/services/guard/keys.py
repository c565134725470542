"""The guard's items, all under its own ``#G`` prefixes.

Account partition ``A#{account}#G``:

- ``B#{hour}``: counters of one clock hour (``hour`` = epoch seconds // 3600, zero-padded so
  keys sort by time).  The account's rolling window is a range query over the last N.
- ``STATE``: whether the account trip is armed, the trip's numbers, and the baseline taken
  when an operator unlocked the account.
- ``SETTINGS``: the account's thresholds.
- ``ACT#{ms}#{campaign}``: a log of guard actions (expires) for the score.
- ``SEEN#...``: dedupe markers of feedback that names no campaign.

Campaign partition ``A#{account}#G#{campaign}``:

- ``TOTAL``: the whole campaign's counters, its trip flag and resume baseline.
- ``SEEN#...``: dedupe markers (one per batch id, per hard bounce, per complaint).
"""

from __future__ import annotations

HOUR = 3600
MARKER_TTL = 45 * 86400  # far longer than any redelivery
BUCKET_TTL = 8 * 86400  # longer than the widest window (a week)
TOTAL_TTL = 90 * 86400  # after the last event; no campaign sends for that long
ACTION_TTL = 30 * 86400

STATE_SK = "STATE"
SETTINGS_SK = "SETTINGS"
TOTAL_SK = "TOTAL"
BUCKET_PREFIX = "B#"
ACTION_PREFIX = "ACT#"


def account_pk(account: str) -> str:
    return f"A#{account}#G"


def campaign_pk(account: str, campaign: str) -> str:
    return f"A#{account}#G#{campaign}"


def hour_of(at: float) -> int:
    return int(at // HOUR)


def bucket_sk(hour: int) -> str:
    return f"{BUCKET_PREFIX}{hour:010d}"


def action_sk(at: float, campaign: str) -> str:
    return f"{ACTION_PREFIX}{int(at * 1000):013d}#{campaign or '-'}"
