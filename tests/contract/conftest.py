"""Fixtures for the contract suites."""

from __future__ import annotations

import sys
from pathlib import Path

# The shared helpers live in ``tests.support``; make the repository root importable
# when pytest is started without it on the path.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.support.fixtures import moto_endpoint  # noqa: E402

__all__ = ["moto_endpoint"]
