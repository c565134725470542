"""The Blobs contract on FileBlobs, plus the signed upload URL rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from lunamail.adapters.blobs.files import FileBlobs, verify_upload
from lunamail.ports.blobs import Blobs
from lunamail.ports.clock import FakeClock

from .blobs_contract import BlobsContract

KEY = b"k" * 32


def parse_upload(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    assert parts.path.startswith("/uploads/")
    query = parse_qs(parts.query)
    return unquote(parts.path.removeprefix("/uploads/")), query["expires"][0], query["sig"][0]


class TestFileBlobs(BlobsContract):
    @pytest.fixture
    def blobs(self, tmp_path: Path) -> Iterator[Blobs]:
        yield FileBlobs(tmp_path / "blobs", base_url="http://127.0.0.1:8000", signing_key=KEY)

    def upload(self, blobs: Blobs, url: str, data: bytes, content_type: str) -> None:
        """What the HTTP API does with a PUT: verify the signature, then store."""
        key, expires, sig = parse_upload(url)
        assert verify_upload(KEY, key, expires, sig, now=float(expires) - 1)
        blobs.put(key, data)


def test_signed_urls_expire_and_bind_the_key(tmp_path: Path) -> None:
    clock = FakeClock(1_700_000_000)
    blobs = FileBlobs(tmp_path, base_url="https://mail.example.com/", signing_key=KEY, clock=clock)
    url = blobs.upload_url("imports/a b.csv", expires=60)
    assert url.startswith(
        "https://mail.example.com/uploads/imports/a%20b.csv?expires=1700000060&sig="
    )
    key, expires, sig = parse_upload(url)
    assert key == "imports/a b.csv"
    assert verify_upload(KEY, key, expires, sig, now=1_700_000_060)
    assert not verify_upload(KEY, key, expires, sig, now=1_700_000_061)
    assert not verify_upload(KEY, "imports/other.csv", expires, sig, now=1_700_000_000)
    assert not verify_upload(KEY, key, str(int(expires) + 1), sig, now=1_700_000_000)
    assert not verify_upload(b"other key", key, expires, sig, now=1_700_000_000)
    assert not verify_upload(KEY, key, "soon", sig, now=1_700_000_000)
    assert not verify_upload(KEY, "../etc/passwd", expires, sig, now=1_700_000_000)


def test_files_live_under_the_root_and_temp_files_are_hidden(tmp_path: Path) -> None:
    blobs = FileBlobs(tmp_path, base_url="http://x", signing_key=KEY)
    blobs.put("raw/1.eml", b"mail")
    path = blobs.local_path("raw/1.eml")
    assert path is not None and Path(path).read_bytes() == b"mail"
    assert Path(path).resolve().is_relative_to(tmp_path.resolve())
    assert list(blobs.list()) == ["raw/1.eml"]
    assert list((tmp_path / ".tmp").iterdir()) == []
    with pytest.raises(ValueError):
        blobs.put(".tmp/x", b"no")


def test_a_failed_stream_leaves_the_old_object(tmp_path: Path) -> None:
    blobs = FileBlobs(tmp_path, base_url="http://x", signing_key=KEY)
    blobs.put("a", b"old")

    class Broken:
        def read(self, n: int = -1) -> bytes:
            raise OSError("connection reset")

    with pytest.raises(OSError):
        blobs.put_stream("a", Broken())  # type: ignore[arg-type]
    assert blobs.get("a") == b"old"
    assert list((tmp_path / ".tmp").iterdir()) == []
