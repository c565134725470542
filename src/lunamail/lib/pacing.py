"""Pacing maths: a send-slot schedule that never exceeds a rate, plus throttle back-off.

Pure functions over a small serialisable ``PaceState`` so the same maths runs
in-process (``LocalPacer``) or shared through a database row (``SqlitePacer``).

Guarantees, for the schedule it hands out:
* slots are at least ``1/rate`` apart, so every half-open window of one second holds at
  most ``ceil(rate)`` slots (``rate`` slots for a whole-number rate);
* with a window ``N per P seconds``, slot ``k`` is never earlier than slot ``k - N``
  plus ``P``, so every half-open window of ``P`` seconds holds at most ``N`` slots.
After a throttle signal the rate halves (multiplicative decrease) and climbs back
linearly to the configured rate (additive increase).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PaceConfig", "PaceState", "current_rate", "parse_window", "reserve", "throttle"]

# Slots sit this much further apart than 1/rate so that float rounding of wall-clock
# timestamps (~0.2 µs at today's epoch) can never squeeze rate+1 slots into one second.
_GUARD = 1e-6


@dataclass(frozen=True, slots=True)
class PaceConfig:
    rate: float = 0.0  # sends per second; 0 = unlimited
    window_count: int = 0  # optional N ...
    window_seconds: float = 0.0  # ... per P seconds
    decrease: float = 0.5  # factor applied to the rate on a throttle signal
    recovery_seconds: float = 60.0  # time to climb from 0 back to the configured rate
    min_rate: float = 0.1  # never throttle below this
    hold_seconds: float = 1.0  # throttle signals closer than this count once

    def __post_init__(self) -> None:
        if self.rate < 0 or self.window_count < 0 or self.window_seconds < 0:
            raise ValueError("pacing rate and window must not be negative")
        if bool(self.window_count) != bool(self.window_seconds):
            raise ValueError("a pacing window needs both a count and a period")
        if not 0 < self.decrease < 1:
            raise ValueError("decrease must be between 0 and 1")

    @property
    def limited(self) -> bool:
        return self.rate > 0 or self.window_count > 0


def parse_window(spec: str) -> tuple[int, float]:
    """``"50000/3600"`` -> ``(50000, 3600.0)``; ``""`` -> ``(0, 0.0)`` (no window)."""
    spec = spec.strip()
    if not spec:
        return 0, 0.0
    count, sep, seconds = spec.partition("/")
    try:
        n, p = int(count), float(seconds)
    except ValueError:
        n, p = -1, -1.0
    if not sep or n <= 0 or p <= 0:
        raise ValueError(f"send window {spec!r}: expected 'N/seconds', e.g. '50000/3600'")
    return n, p


@dataclass(slots=True)
class PaceState:
    """Where the schedule stands.  ``runs`` are the recent reservations
    ``(first index, start, spacing, count)``, kept only as far back as the window needs."""

    next_free: float = 0.0
    total: int = 0
    floor_rate: float = 0.0  # rate right after the last throttle (0 = never throttled)
    throttled_at: float = 0.0
    runs: list[tuple[int, float, float, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "next_free": self.next_free,
            "total": self.total,
            "floor_rate": self.floor_rate,
            "throttled_at": self.throttled_at,
            "runs": self.runs,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PaceState:
        return cls(
            next_free=float(d["next_free"]),
            total=int(d["total"]),
            floor_rate=float(d["floor_rate"]),
            throttled_at=float(d["throttled_at"]),
            runs=[(int(a), float(b), float(c), int(e)) for a, b, c, e in d["runs"]],
        )

    def slot_time(self, index: int) -> float:
        """When slot ``index`` was scheduled (it must still be in ``runs``)."""
        firsts = [r[0] for r in self.runs]
        i = bisect.bisect_right(firsts, index) - 1
        first, start, spacing, count = self.runs[i]
        if not first <= index < first + count:
            raise IndexError(index)
        return start + (index - first) * spacing


def current_rate(cfg: PaceConfig, state: PaceState, now: float) -> float:
    """The effective rate: the configured one, or less while recovering from a throttle."""
    if cfg.rate <= 0:
        return 0.0
    if not state.floor_rate:
        return cfg.rate
    climbed = state.floor_rate + cfg.rate / cfg.recovery_seconds * max(0.0, now - state.throttled_at)
    if climbed >= cfg.rate:
        state.floor_rate = 0.0
        return cfg.rate
    return climbed


def throttle(cfg: PaceConfig, state: PaceState, now: float) -> None:
    """The provider said "slow down" (421/454): halve the effective rate.  Signals within
    ``hold_seconds`` of the last one are the same event seen by several connections.
    Without a configured rate there is nothing to scale, so this is a no-op."""
    if cfg.rate <= 0:
        return
    if state.floor_rate and now - state.throttled_at < cfg.hold_seconds:
        return
    state.floor_rate = max(cfg.min_rate, current_rate(cfg, state, now) * cfg.decrease)
    state.throttled_at = now


def reserve(cfg: PaceConfig, state: PaceState, n: int, now: float) -> tuple[float, float]:
    """Reserve ``n`` consecutive slots: returns ``(start, spacing)``; slot i is at
    ``start + i * spacing``.  Unlimited pacing returns ``(now, 0.0)``."""
    if n <= 0:
        raise ValueError("reserve at least one slot")
    if not cfg.limited:
        return now, 0.0
    rate = current_rate(cfg, state, now)
    spacing = 1.0 / rate + _GUARD if rate > 0 else 0.0
    start = max(now, state.next_free)
    if cfg.window_count:
        # slot total+j must come at least P after slot total+j-N; shift the whole run so
        # that every one of its slots respects that
        need = cfg.window_seconds + _GUARD
        if n > cfg.window_count:  # the run looks back into itself: spread it out
            spacing = max(spacing, need / cfg.window_count)
        _prune(cfg, state)
        firsts = [r[0] for r in state.runs]
        for j in range(n):
            back = state.total + j - cfg.window_count
            if back < 0 or back >= state.total:
                continue
            first, rstart, rspacing, _ = state.runs[bisect.bisect_right(firsts, back) - 1]
            start = max(start, rstart + (back - first) * rspacing + need - j * spacing)
        state.runs.append((state.total, start, spacing, n))
    state.total += n
    state.next_free = start + n * spacing
    return start, spacing


def _prune(cfg: PaceConfig, state: PaceState) -> None:
    """Drop runs that no future slot can look back to (older than the last N slots)."""
    keep_from = state.total - cfg.window_count
    while state.runs and state.runs[0][0] + state.runs[0][3] <= keep_from:
        state.runs.pop(0)


def chunk_size(rate: float, default: int = 50) -> int:
    """How many slots to reserve at once: about a quarter second's worth, so a process
    that stops early wastes little of the shared schedule."""
    if rate <= 0:
        return default
    return max(1, min(default, math.ceil(rate / 4)))
