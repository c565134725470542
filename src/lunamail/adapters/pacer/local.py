"""In-process pacer: one schedule shared by the threads of this process."""

from __future__ import annotations

import threading

from lunamail.lib import pacing
from lunamail.ports.clock import Clock, SystemClock


class LocalPacer:
    """Thread-safe; use ``SqlitePacer`` when several processes send for the same account."""

    def __init__(self, config: pacing.PaceConfig, clock: Clock | None = None) -> None:
        self.config = config
        self._clock = clock or SystemClock()
        self._state = pacing.PaceState()
        self._lock = threading.Lock()

    def reserve(self, n: int) -> tuple[float, float]:
        with self._lock:
            return pacing.reserve(self.config, self._state, n, self._clock.now())

    def throttled(self) -> None:
        with self._lock:
            pacing.throttle(self.config, self._state, self._clock.now())

    def current_rate(self) -> float:
        with self._lock:
            return pacing.current_rate(self.config, self._state, self._clock.now())
