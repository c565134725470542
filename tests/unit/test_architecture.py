"""The layering is a checked contract: domain is pure, services are independent, adapters
never reach up.  The contracts live in pyproject.toml; this runs them as a test."""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_layering_contracts_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the contracts are read from pyproject.toml
    assert lint_imports(no_cache=True) == 0


def test_every_routed_handler_lives_in_the_service_named_by_its_queue() -> None:
    from lunamail.runtime.routing import default_router

    router = default_router()
    for name in router.queues():
        handler = router.handler_for_queue(name)
        service = name.split(".")[0]
        assert handler.__module__.startswith(f"lunamail.services.{service}."), name
