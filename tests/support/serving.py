"""Waiting for a server a test started: bounded by attempts, not timed."""

from __future__ import annotations

import threading

import httpx
import pytest


def wait_until_serving(base: str, path: str = "/health", attempts: int = 500) -> None:
    """Return once ``GET base+path`` answers 200; fail the test after ``attempts`` tries."""
    with httpx.Client(base_url=base, timeout=5.0) as probe:
        for _ in range(attempts):
            try:
                if probe.get(path).status_code == 200:
                    return
            except httpx.TransportError:
                threading.Event().wait(0.02)
    pytest.fail(f"the server at {base} did not come up")
