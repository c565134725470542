"""Secrets: per-account keys for signing tokens (tracking, unsubscribe, VERP, uploads)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol, runtime_checkable


@runtime_checkable
class Secrets(Protocol):
    def key(self, account: str, purpose: str) -> bytes:
        """A 32-byte key unique to (account, purpose); stable across restarts."""
        ...


class DerivedSecrets:
    """Derives per-account keys from one master key (HMAC-SHA256 as a KDF).

    The master key lives in the data folder locally, in Secrets Manager on AWS;
    rotating it invalidates outstanding tokens, which is the point of rotation.
    """

    def __init__(self, master: bytes) -> None:
        if len(master) < 32:
            raise ValueError("master key must be at least 32 bytes")
        self._master = hmac.new(master, digestmod=hashlib.sha256)  # keyed once, copied per call

    def key(self, account: str, purpose: str) -> bytes:
        """Derived on every call (~1 µs), never cached: the account of a tracking token is
        read before its MAC is checked, so a cache here would grow with every forged token."""
        h = self._master.copy()
        h.update(f"{account}\x00{purpose}".encode())
        return h.digest()

    def __repr__(self) -> str:  # never print key material
        return "DerivedSecrets(<hidden>)"
