"""Blob key rules shared by every Blobs adapter, so a key valid locally is valid on S3."""

from __future__ import annotations

MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255  # a file name's limit on common filesystems


class InvalidBlobKey(ValueError):
    """A key that could escape the store or that S3 and a filesystem would treat differently."""


def check_key(key: str) -> str:
    """Relative, '/'-separated, no empty/'.'/'..' segments, no backslash or NUL, ≤1024 bytes,
    each segment ≤255 bytes (so every key is also a valid file path)."""
    if not isinstance(key, str) or not key:
        raise InvalidBlobKey("a blob key must be a non-empty string")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidBlobKey(f"blob key longer than {MAX_KEY_BYTES} bytes")
    if "\\" in key or "\x00" in key:
        raise InvalidBlobKey(f"blob key {key!r} contains a backslash or NUL")
    if key.startswith("/"):
        raise InvalidBlobKey(f"blob key {key!r} is absolute")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidBlobKey(f"blob key {key!r} has an empty, '.' or '..' segment")
        if len(part.encode()) > MAX_SEGMENT_BYTES:
            raise InvalidBlobKey(f"a segment of blob key {key[:40]!r}... exceeds 255 bytes")
    return key
