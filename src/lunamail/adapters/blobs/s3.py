"""S3Blobs: objects in one S3 bucket; uploads go straight to S3 via presigned PUT URLs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from lunamail.ports.blobs import BlobNotFound

from ._keys import check_key

_MISSING = ("NoSuchKey", "404", "NotFound")


class _Counting:
    """Counts bytes as boto3's transfer manager reads the caller's stream."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        chunk = self._stream.read(n)
        self.size += len(chunk)
        return chunk


class S3Blobs:
    """Blobs on S3 (or any S3-compatible endpoint)."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        if client is None:
            # Custom endpoints (emulators, MinIO) rarely resolve bucket subdomains.
            config = Config(s3={"addressing_style": "path"}) if endpoint_url else None
            client = boto3.client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=config
            )
        self._client = client

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        check_key(key)
        self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def put_stream(
        self, key: str, stream: BinaryIO, *, content_type: str = "application/octet-stream"
    ) -> int:
        """Multipart upload for large streams, without holding the whole object."""
        check_key(key)
        counting = _Counting(stream)
        self._client.upload_fileobj(
            counting, self.bucket, key, ExtraArgs={"ContentType": content_type}
        )
        return counting.size

    def _get(self, key: str) -> Any:
        check_key(key)
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise BlobNotFound(key) from exc
            raise

    def get(self, key: str) -> bytes:
        body = self._get(key)["Body"]
        try:
            return cast(bytes, body.read())
        finally:
            body.close()

    def open(self, key: str) -> BinaryIO:
        return cast(BinaryIO, self._get(key)["Body"])

    def _head(self, key: str) -> dict[str, Any] | None:
        check_key(key)
        try:
            return cast(dict[str, Any], self._client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise BlobNotFound(key)
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        check_key(key)
        self._client.delete_object(Bucket=self.bucket, Key=key)

    def list(self, prefix: str = "") -> Iterator[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def upload_url(self, key: str, *, expires: int = 3600, content_type: str | None = None) -> str:
        """A presigned PUT; with ``content_type`` the uploader must send that Content-Type."""
        check_key(key)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ContentType"] = content_type
        url: str = self._client.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=expires, HttpMethod="PUT"
        )
        return url

    def local_path(self, key: str) -> str | None:
        check_key(key)
        return None
