"""The Blobs contract on S3Blobs, against moto in server mode; uploads are real HTTP PUTs."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from lunamail.adapters.blobs.s3 import S3Blobs
from lunamail.ports.blobs import Blobs

from .blobs_contract import BlobsContract


class TestS3Blobs(BlobsContract):
    @pytest.fixture
    def blobs(self, moto_endpoint: str) -> Iterator[Blobs]:
        client = boto3.client(
            "s3",
            endpoint_url=moto_endpoint,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        bucket = f"blobs-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        yield S3Blobs(bucket, client=client)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)

    def upload(self, blobs: Blobs, url: str, data: bytes, content_type: str) -> None:
        request = urllib.request.Request(
            url, data=data, method="PUT", headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
