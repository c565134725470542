"""Sealing small secrets at rest (AES-256-GCM): a two-factor key or a sending domain's DKIM
private key is stored sealed with a key derived from the installation's master key, bound
to whose it is (the associated data), so a copy of the store alone reveals no key and a
sealed value moved to another user's (or account's, or domain's) item does not open."""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "s1"


class Unsealable(ValueError):
    """A sealed value that does not open with this key and binding (or was changed)."""


def seal(key: bytes, plaintext: bytes, bound_to: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext, bound_to.encode("utf-8"))
    return f"{VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"


def unseal(key: bytes, value: str, bound_to: str) -> bytes:
    version, _, body = (value or "").partition(".")
    if version != VERSION:
        raise Unsealable("not a sealed value")
    try:
        raw = base64.urlsafe_b64decode(body.encode("ascii"))
        return AESGCM(key).decrypt(raw[:12], raw[12:], bound_to.encode("utf-8"))
    except (InvalidTag, ValueError) as e:
        raise Unsealable("the sealed value does not open") from e
