"""The tracking service's own items."""

from __future__ import annotations

CONTENT_SK = "CONTENT"


def campaign_pk(account: str, campaign: str) -> str:
    """Partition of tracking's copy of one campaign (never another service's items)."""
    return f"A#{account}#T#{campaign}"
