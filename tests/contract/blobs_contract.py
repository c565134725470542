"""The Blobs contract: every Blobs adapter passes every test here.

An adapter's module overrides the ``blobs`` fixture and ``upload`` (how a client
would use an upload URL against that backend).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import pytest

from lunamail.ports.blobs import BlobNotFound, Blobs


class BlobsContract:
    @pytest.fixture
    def blobs(self) -> Iterator[Blobs]:
        raise NotImplementedError("an adapter's test module builds the store")

    def upload(self, blobs: Blobs, url: str, data: bytes, content_type: str) -> None:
        """PUT ``data`` to ``url`` the way a browser or CLI would."""
        raise NotImplementedError

    @pytest.fixture
    def ns(self) -> str:
        return f"t{uuid.uuid4().hex[:8]}/"

    def test_is_blobs(self, blobs: Blobs) -> None:
        assert isinstance(blobs, Blobs)

    def test_put_get_overwrite(self, blobs: Blobs, ns: str) -> None:
        blobs.put(ns + "raw/1.eml", b"From: a\r\n\r\nhi", content_type="message/rfc822")
        assert blobs.get(ns + "raw/1.eml") == b"From: a\r\n\r\nhi"
        assert blobs.exists(ns + "raw/1.eml")
        assert blobs.size(ns + "raw/1.eml") == 13
        blobs.put(ns + "raw/1.eml", b"")
        assert blobs.get(ns + "raw/1.eml") == b""
        assert blobs.size(ns + "raw/1.eml") == 0

    def test_missing_objects(self, blobs: Blobs, ns: str) -> None:
        assert not blobs.exists(ns + "nope")
        with pytest.raises(BlobNotFound):
            blobs.get(ns + "nope")
        with pytest.raises(KeyError):
            blobs.open(ns + "nope")
        with pytest.raises(BlobNotFound):
            blobs.size(ns + "nope")
        blobs.delete(ns + "nope")

    def test_delete(self, blobs: Blobs, ns: str) -> None:
        blobs.put(ns + "a/b", b"x")
        blobs.delete(ns + "a/b")
        assert not blobs.exists(ns + "a/b")
        with pytest.raises(BlobNotFound):
            blobs.get(ns + "a/b")

    def test_streams_in_and_out(self, blobs: Blobs, ns: str) -> None:
        data = bytes(range(256)) * 12_289  # ~3 MB, not a multiple of any chunk size
        assert blobs.put_stream(ns + "big.csv", io.BytesIO(data), content_type="text/csv") == len(
            data
        )
        assert blobs.size(ns + "big.csv") == len(data)
        with blobs.open(ns + "big.csv") as f:
            parts = []
            while chunk := f.read(100_000):
                parts.append(chunk)
        assert b"".join(parts) == data

    def test_list_by_prefix_in_key_order(self, blobs: Blobs, ns: str) -> None:
        keys = [ns + k for k in ("b/2", "a-b", "a/x/y", "a/1", "b/10", "c", "é/1")]
        for k in keys:
            blobs.put(k, k.encode())
        assert list(blobs.list(ns)) == sorted(keys, key=lambda k: k.encode())
        assert list(blobs.list(ns + "a/")) == [ns + "a/1", ns + "a/x/y"]
        assert list(blobs.list(ns + "a")) == [ns + "a-b", ns + "a/1", ns + "a/x/y"]
        assert list(blobs.list(ns + "b/1")) == [ns + "b/10"]
        assert list(blobs.list(ns + "zzz")) == []

    @pytest.mark.parametrize(
        "key",
        ["", "../x", "a/../../b", "/etc/passwd", "a\\b", "a//b", "a/./b", "x" * 1025, "a/\x00"],
    )
    def test_refuses_unsafe_keys(self, blobs: Blobs, key: str) -> None:
        with pytest.raises(ValueError):
            blobs.put(key, b"x")
        with pytest.raises(ValueError):
            blobs.get(key)
        with pytest.raises(ValueError):
            blobs.upload_url(key)

    def test_long_key_within_limit(self, blobs: Blobs, ns: str) -> None:
        key = ns + "/".join(["k" * 200] * 5)
        key += "/" + "z" * (1024 - len(key) - 1)
        assert len(key) == 1024
        blobs.put(key, b"ok")
        assert blobs.get(key) == b"ok"
        with pytest.raises(ValueError):
            blobs.put(ns + "s" * 256, b"segment too long")

    def test_upload_url_accepts_one_put(self, blobs: Blobs, ns: str) -> None:
        url = blobs.upload_url(ns + "uploads/list.csv", expires=600, content_type="text/csv")
        self.upload(blobs, url, b"email\na@example.com\n", "text/csv")
        assert blobs.get(ns + "uploads/list.csv") == b"email\na@example.com\n"
