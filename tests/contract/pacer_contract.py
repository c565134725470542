"""The Pacer contract: every backend hands out one schedule that never overfills a window.

Subclass ``PacerContract`` and provide ``make``: ``make(config, clock)`` returns a *new
handle* on one shared schedule each time it is called within a test (two handles of
``SqlitePacer`` or ``DynamoPacer`` are two processes' views of the same row or item; for an
in-process pacer it returns the same object).  ``concurrent_threads`` says how many real
threads may race in the concurrency case (an emulator without atomic conditional writes
lowers it).
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections.abc import Callable

import pytest

from lunamail.lib.pacing import PaceConfig
from lunamail.ports.clock import FakeClock, SystemClock
from lunamail.ports.pacer import Pacer

Make = Callable[[PaceConfig, object], Pacer]


def expand(reservations: list[tuple[float, float, int]]) -> list[float]:
    return sorted(start + i * spacing for start, spacing, n in reservations for i in range(n))


def max_in_window(times: list[float], width: float) -> int:
    """Most slots in any half-open window [t, t + width); the maximum starts at a slot."""
    return max((bisect.bisect_left(times, t + width) - i for i, t in enumerate(times)), default=0)


class PacerContract:
    concurrent_threads = 4

    @pytest.fixture
    def make(self) -> Make:
        raise NotImplementedError

    def test_handles_share_one_schedule_within_the_rate(self, make: Make) -> None:
        clock = FakeClock()
        handles = [make(PaceConfig(rate=20), clock) for _ in range(3)]
        rng = random.Random(5)
        out: list[tuple[float, float, int]] = []
        for step in range(40):
            n = rng.randint(1, 12)
            start, spacing = handles[step % 3].reserve(n)
            assert start >= clock.now()
            out.append((start, spacing, n))
            clock.advance(rng.uniform(0, 0.8))
        times = expand(out)
        assert max_in_window(times, 1.0) <= 20
        assert max_in_window(times, 1.0) >= 19  # and the rate is actually used
        assert len(set(times)) == len(times)

    def test_a_window_is_never_exceeded(self, make: Make) -> None:
        clock = FakeClock()
        cfg = PaceConfig(rate=50, window_count=100, window_seconds=30)
        a, b = make(cfg, clock), make(cfg, clock)
        out = []
        for i in range(40):
            out.append((*(a if i % 2 else b).reserve(9), 9))
            clock.advance(0.3)
        times = expand(out)
        assert max_in_window(times, 1.0) <= 50
        assert max_in_window(times, 30.0) == 100

    def test_throttle_is_seen_by_every_handle_and_recovers(self, make: Make) -> None:
        clock = FakeClock()
        cfg = PaceConfig(rate=40, recovery_seconds=20)
        a, b = make(cfg, clock), make(cfg, clock)
        assert b.current_rate() == 40
        a.throttled()
        b.throttled()  # the same signal heard by another sender: counted once
        assert b.current_rate() == pytest.approx(20)
        _, spacing = b.reserve(10)
        assert spacing == pytest.approx(1 / 20, rel=1e-3)
        clock.advance(30)
        assert a.current_rate() == 40

    def test_unlimited_and_bad_requests(self, make: Make) -> None:
        clock = FakeClock()
        pacer = make(PaceConfig(), clock)
        assert pacer.reserve(1000) == (clock.now(), 0.0)
        pacer.throttled()
        assert pacer.current_rate() == 0.0
        with pytest.raises(ValueError):
            make(PaceConfig(rate=5), clock).reserve(0)

    def test_racing_threads_never_get_the_same_slot(self, make: Make) -> None:
        cfg = PaceConfig(rate=1000)
        got: list[tuple[float, float, int]] = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def work() -> None:
            pacer = make(cfg, SystemClock())
            try:
                for _ in range(15):
                    r = pacer.reserve(7)
                    with lock:
                        got.append((*r, 7))
            except BaseException as e:  # reported below, in the test's thread
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(self.concurrent_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        times = expand(got)
        assert len(times) == 15 * 7 * self.concurrent_threads
        assert len(set(times)) == len(times)
        assert max_in_window(times, 1.0) <= math.ceil(cfg.rate)
