"""Synchronous guard API for the CLI, the HTTP API and report views: thresholds, the
reputation score, a campaign's guard numbers.

Another service must not import this module (services talk through events); an
entrypoint that shows the score next to a report calls :func:`score` itself.
"""

from __future__ import annotations

from typing import Any

from lunamail.domain.guard import GuardThresholds, reputation_score
from lunamail.ports.deps import Deps

from . import keys
from .errors import InvalidInput
from .state import account_state, account_window, campaign_counts, campaign_total, load_thresholds

__all__ = [
    "ACTIONS_LOOKBACK",
    "campaign_status",
    "get_thresholds",
    "recent_actions",
    "score",
    "set_thresholds",
]

#: How far back guard actions weigh on the score.
ACTIONS_LOOKBACK = 7 * 86400
_MAX_ACTIONS = 100


def get_thresholds(deps: Deps, account: str) -> GuardThresholds:
    """The account's thresholds (defaults where none were set)."""
    return load_thresholds(deps, account)


def set_thresholds(
    deps: Deps,
    account: str,
    *,
    campaign_bounce: float | None = None,
    campaign_complaint: float | None = None,
    account_bounce: float | None = None,
    account_complaint: float | None = None,
    min_sample: int | None = None,
    window_hours: int | None = None,
) -> GuardThresholds:
    """Change some thresholds (None keeps a value); InvalidInput names every bad field.
    New values apply to the next event counted."""
    changes: dict[str, Any] = {
        "campaign_bounce": campaign_bounce, "campaign_complaint": campaign_complaint,
        "account_bounce": account_bounce, "account_complaint": account_complaint,
        "min_sample": min_sample, "window_hours": window_hours,
    }  # fmt: skip
    merged = GuardThresholds.from_dict({**load_thresholds(deps, account).to_dict(), **changes})
    problems = merged.problems()
    if problems:
        raise InvalidInput("invalid guard thresholds", problems)
    deps.store.put({"pk": keys.account_pk(account), "sk": keys.SETTINGS_SK, **merged.to_dict(),
                    "updated_at": deps.clock.now()})
    return merged


def recent_actions(deps: Deps, account: str, *, since: float | None = None) -> list[dict[str, Any]]:
    """Guard actions (campaign trips, account locks) since ``since`` (default: the score's
    look-back), oldest first; at most 100."""
    start = deps.clock.now() - ACTIONS_LOOKBACK if since is None else since
    page = deps.store.query(
        keys.account_pk(account), prefix=keys.ACTION_PREFIX,
        start=f"{keys.ACTION_PREFIX}{int(start * 1000):013d}", limit=_MAX_ACTIONS,
    )  # fmt: skip
    return [
        {"kind": i.get("kind", ""), "campaign": i.get("campaign", ""), "reason": i.get("reason", ""),
         "at": i.get("at")}
        for i in page.items
    ]  # fmt: skip


def score(deps: Deps, account: str) -> dict[str, Any]:
    """The account's reputation: ``score`` 0-100 (100 = clean), the ``reasons`` (each
    ``{"code", "points", "message"}``), the window's rates and counts and whether the
    guard holds a lock.  A few item reads: cheap enough for every report view."""
    t = load_thresholds(deps, account)
    state = account_state(deps, account)
    counts = account_window(deps, account, t.window_hours, deps.clock.now(), state)
    locked_reason: str | None = None
    if state.get("tripped"):
        events = state.get("trip_events") or [{}]
        locked_reason = str((events[0].get("body") or {}).get("reason", "")) or "thresholds passed"
    actions = recent_actions(deps, account)
    pauses = sum(1 for a in actions if a["kind"] == "campaign_tripped")
    value, reasons = reputation_score(counts, t, locked_reason=locked_reason, recent_pauses=pauses)
    return {
        "account": account,
        "score": value,
        "reasons": reasons,
        "bounce_rate": counts.bounce_rate,
        "complaint_rate": counts.complaint_rate,
        "sent": counts.sent,
        "bounces": counts.bounces,
        "complaints": counts.complaints,
        "soft_bounces": counts.soft_bounces,
        "failed": counts.failed,
        "window_hours": t.window_hours,
        "locked": locked_reason is not None,
        "thresholds": t.to_dict(),
        "recent_actions": actions,
    }


def campaign_status(deps: Deps, account: str, campaign: str) -> dict[str, Any]:
    """A campaign's guard numbers (since the last guard resume) and whether it tripped."""
    t = load_thresholds(deps, account)
    total = campaign_total(deps, account, campaign)
    counts = campaign_counts(total)
    events = total.get("trip_events") or []
    return {
        "account": account,
        "campaign": campaign,
        **counts.to_dict(),
        "bounce_rate": counts.bounce_rate,
        "complaint_rate": counts.complaint_rate,
        "tripped": bool(total.get("tripped")),
        "reason": str((events[0].get("body") or {}).get("reason", "")) if events else "",
        "thresholds": {"bounce": t.campaign_bounce, "complaint": t.campaign_complaint,
                       "min_sample": t.min_sample},
    }
