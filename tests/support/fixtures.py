"""Pytest fixtures to import into a conftest: ``from tests.support.fixtures import moto_endpoint``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.motoserver import moto_server


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server for the whole test session; tests isolate by resource name."""
    with moto_server() as url:
        yield url
