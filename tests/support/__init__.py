"""Test helpers shared across suites (servers started on 127.0.0.1, free ports)."""

from tests.support.motoserver import moto_server

__all__ = ["moto_server"]
