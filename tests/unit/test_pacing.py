"""Pacing: simulated workers on a fake clock must never overfill any sliding window."""

from __future__ import annotations

import bisect
import math
import multiprocessing
import random
from pathlib import Path

import pytest

from lunamail.adapters.pacer import LocalPacer, SqlitePacer
from lunamail.lib import pacing
from lunamail.lib.pacing import PaceConfig, parse_window
from lunamail.ports.clock import FakeClock
from lunamail.ports.pacer import Pacer


def expand(reservations: list[tuple[float, float, int]]) -> list[float]:
    return sorted(start + i * spacing for start, spacing, n in reservations for i in range(n))


def max_in_window(times: list[float], width: float) -> int:
    """Most sends in any half-open window [t, t + width); the maximum starts at a send."""
    return max((bisect.bisect_left(times, t + width) - i for i, t in enumerate(times)), default=0)


def simulate(pacer: Pacer, clock: FakeClock, workers: int, steps: int, seed: int) -> list[float]:
    """Several workers reserve random chunks at random moments, some throttle signals too."""
    rng = random.Random(seed)
    out: list[tuple[float, float, int]] = []
    for _ in range(steps):
        for _w in range(workers):
            n = rng.randint(1, 60)
            start, spacing = pacer.reserve(n)
            assert start >= clock.now()
            out.append((start, spacing, n))
        clock.advance(rng.uniform(0, 2.0))
    return expand(out)


@pytest.mark.parametrize("rate", [1.0, 7.0, 14.0, 100.0, 333.0])
def test_no_second_holds_more_than_rate(rate: float) -> None:
    clock = FakeClock()
    times = simulate(LocalPacer(PaceConfig(rate=rate), clock), clock, workers=4, steps=60, seed=int(rate))
    assert max_in_window(times, 1.0) <= math.ceil(rate)
    assert max_in_window(times, 1.0) >= math.floor(rate)  # and the rate is actually used


def test_fractional_rate() -> None:
    clock = FakeClock()
    times = simulate(LocalPacer(PaceConfig(rate=2.5), clock), clock, workers=2, steps=30, seed=3)
    assert max_in_window(times, 1.0) <= 3
    assert max_in_window(times, 10.0) <= 25


def test_period_window_is_never_exceeded() -> None:
    clock = FakeClock()
    cfg = PaceConfig(rate=50, window_count=500, window_seconds=60)
    times = simulate(LocalPacer(cfg, clock), clock, workers=3, steps=80, seed=7)
    assert len(times) > 2000
    assert max_in_window(times, 1.0) <= 50
    assert max_in_window(times, 60.0) <= 500
    assert max_in_window(times, 60.0) == 500


def test_window_without_rate_and_oversized_requests() -> None:
    clock = FakeClock()
    pacer = LocalPacer(PaceConfig(window_count=10, window_seconds=5), clock)
    times = expand([(*pacer.reserve(n), n) for n in (4, 25, 3, 9)])
    assert max_in_window(times, 5.0) <= 10


def test_throttle_halves_then_recovers() -> None:
    clock = FakeClock()
    pacer = LocalPacer(PaceConfig(rate=100, recovery_seconds=50), clock)
    assert pacer.current_rate() == 100
    pacer.throttled()
    assert pacer.current_rate() == pytest.approx(50)
    pacer.throttled()  # the same event seen by another connection: counted once
    assert pacer.current_rate() == pytest.approx(50)
    clock.advance(2)
    pacer.throttled()
    assert pacer.current_rate() == pytest.approx(27, abs=0.01)  # (50 + 2 s of climb) / 2
    _start, spacing = pacer.reserve(10)
    assert spacing == pytest.approx(1 / 27, rel=1e-3)
    clock.advance(10)
    assert pacer.current_rate() == pytest.approx(47, abs=0.01)
    clock.advance(100)
    assert pacer.current_rate() == 100


def test_throttling_slows_the_schedule() -> None:
    clock = FakeClock()
    pacer = LocalPacer(PaceConfig(rate=40), clock)
    before = expand([(*pacer.reserve(40), 40)])
    pacer.throttled()
    after = expand([(*pacer.reserve(40), 40)])
    assert max_in_window(before, 1.0) == 40
    assert max_in_window(after, 1.0) <= 20


def test_unlimited() -> None:
    clock = FakeClock()
    pacer = LocalPacer(PaceConfig(rate=0), clock)
    assert pacer.reserve(1000) == (clock.now(), 0.0)
    pacer.throttled()
    assert pacer.current_rate() == 0.0


def test_state_survives_json() -> None:
    cfg = PaceConfig(rate=10, window_count=30, window_seconds=60)
    state = pacing.PaceState()
    for _ in range(5):
        pacing.reserve(cfg, state, 7, 1000.0)
    pacing.throttle(cfg, state, 1001.0)
    again = pacing.PaceState.from_json(state.to_json())
    assert again == state
    assert pacing.reserve(cfg, again, 3, 1002.0) == pacing.reserve(cfg, state, 3, 1002.0)


def test_parse_window() -> None:
    assert parse_window("50000/3600") == (50000, 3600.0)
    assert parse_window("") == (0, 0.0)
    for bad in ("50000", "x/3600", "10/0", "-1/5"):
        with pytest.raises(ValueError):
            parse_window(bad)


def _reserve_many(path: str, rate: float, rounds: int, q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    pacer = SqlitePacer(path, PaceConfig(rate=rate))
    got = [(*pacer.reserve(10), 10) for _ in range(rounds)]
    pacer.close()
    q.put(got)


def test_sqlite_pacer_across_two_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    q: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    path = str(tmp_path / "pace.db")
    SqlitePacer(path, PaceConfig(rate=200)).close()  # create the table before the race
    procs = [ctx.Process(target=_reserve_many, args=(path, 200.0, 40, q)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    times = expand([r for got in results for r in got])
    assert len(times) == 800
    assert max_in_window(times, 1.0) <= 200
    assert len(set(times)) == 800  # no slot handed out twice
