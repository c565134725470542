"""FileBlobs: objects as files under a root folder, uploads through signed URLs.

Writes go to a temporary file on the same filesystem and are renamed into
place, so a reader sees either the old object or the whole new one, and a
crash never leaves half an object under its key.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from lunamail.ports.blobs import BlobNotFound
from lunamail.ports.clock import Clock, SystemClock

from ._keys import InvalidBlobKey, check_key

_TMP = ".tmp"  # temporary files live here; never a key's first segment
_COPY_CHUNK = 1024 * 1024


def _signature(signing_key: bytes, key: str, expires: int) -> str:
    return hmac.new(signing_key, f"PUT\n{key}\n{expires}".encode(), hashlib.sha256).hexdigest()


def verify_upload(signing_key: bytes, key: str, expires: int | str, sig: str, now: float) -> bool:
    """True when ``sig`` was made by ``upload_url`` for this key and has not expired.

    The HTTP API calls this before accepting a PUT to ``/uploads/{key}``.
    """
    try:
        deadline = int(expires)
        check_key(key)
    except (TypeError, ValueError):
        return False
    if now > deadline:
        return False
    # as bytes: compare_digest refuses non-ASCII str, and a forged signature may be anything
    return hmac.compare_digest(_signature(signing_key, key, deadline).encode(), str(sig).encode())


class FileBlobs:
    """Blobs on the local filesystem."""

    def __init__(
        self, root: Path, *, base_url: str, signing_key: bytes, clock: Clock | None = None
    ) -> None:
        self.root = Path(root)
        self.base_url = base_url.rstrip("/")
        self._signing_key = signing_key
        self._clock = clock or SystemClock()
        (self.root / _TMP).mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.split("/", 1)[0] == _TMP:
            raise InvalidBlobKey(f"blob keys may not start with {_TMP!r}")
        return self.root / key

    def _write(self, key: str, stream: BinaryIO) -> int:
        path = self._path(key)
        fd, tmp = tempfile.mkstemp(dir=self.root / _TMP)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_COPY_CHUNK):
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
            except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
                raise InvalidBlobKey(
                    f"blob key {key!r} clashes with another key used as its folder"
                ) from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        self._write(key, io.BytesIO(data))

    def put_stream(
        self, key: str, stream: BinaryIO, *, content_type: str = "application/octet-stream"
    ) -> int:
        return self._write(key, stream)

    def get(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise BlobNotFound(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(key)
        return path.stat().st_size

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_file():
            path.unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` in S3's order (by UTF-8 bytes), walking only the folders
        that can hold matches."""
        yield from self._walk(self.root, "", prefix)

    def _walk(self, folder: Path, base: str, prefix: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return
        # A folder sorts as "name/" so a depth-first walk yields keys in global order.
        named = sorted(((e.name + "/" if e.is_dir() else e.name), e) for e in entries)
        for name, entry in named:
            key = base + name
            if not base and name == _TMP + "/":
                continue
            if name.endswith("/"):
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(Path(entry.path), key, prefix)
            elif key.startswith(prefix):
                yield key

    def upload_url(self, key: str, *, expires: int = 3600, content_type: str | None = None) -> str:
        self._path(key)
        deadline = int(self._clock.now()) + expires
        sig = _signature(self._signing_key, key, deadline)
        return f"{self.base_url}/uploads/{quote(key, safe='/')}?expires={deadline}&sig={sig}"

    def local_path(self, key: str) -> str | None:
        return str(self._path(key))

    def remove_tree(self) -> None:
        """Delete every object (tests and ``reset`` commands)."""
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / _TMP).mkdir(parents=True, exist_ok=True)
