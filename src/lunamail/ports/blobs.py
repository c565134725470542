"""Blobs: S3-shaped object storage (raw inbound mail, CSV uploads, error reports, attachments)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Protocol, runtime_checkable


class BlobNotFound(KeyError):
    """No object under that key."""


@runtime_checkable
class Blobs(Protocol):
    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        ...

    def put_stream(
        self, key: str, stream: BinaryIO, *, content_type: str = "application/octet-stream"
    ) -> int:
        """Copy a stream into an object without holding it in memory; returns its size."""
        ...

    def get(self, key: str) -> bytes:
        ...

    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of the object (caller closes it)."""
        ...

    def exists(self, key: str) -> bool:
        ...

    def size(self, key: str) -> int:
        ...

    def delete(self, key: str) -> None:
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        ...

    def upload_url(self, key: str, *, expires: int = 3600, content_type: str | None = None) -> str:
        """A URL that accepts one HTTP PUT of the object's bytes until ``expires`` seconds
        from now (S3: a presigned URL; files: a signed URL served by the HTTP API)."""
        ...

    def local_path(self, key: str) -> str | None:
        """A filesystem path for the object when the adapter keeps one (files), else None."""
        ...
