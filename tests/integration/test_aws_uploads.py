"""S3-triggered imports on moto: a CSV PUT to the presigned URL of a declared import makes
S3 notify the upload queue, and the real upload function starts the import."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from lunamail.app import audience as app_audience
from lunamail.app.base import Actor, Env
from lunamail.config import Settings
from lunamail.domain.audience import ImportChunk
from lunamail.entrypoints import aws
from lunamail.entrypoints.aws import uploads
from lunamail.entrypoints.aws.system import build_system
from lunamail.runtime.bootstrap import System
from lunamail.services.audience import api as audience
from tests.support.fixtures import moto_endpoint

from .aws_fixtures import REGION, Aws, consumers_of, make_cloud

__all__ = ["moto_endpoint"]

[CHUNKS] = consumers_of(ImportChunk)
CSV = b"email,name\n" + b"".join(b"u%d@example.org,U %d\n" % (i, i) for i in range(5))


@pytest.fixture
def cloud(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    uploads.reset()
    aws.reset()
    cloud = make_cloud(moto_endpoint, tmp_path, monkeypatch, [uploads.QUEUE, CHUNKS])
    arn = cloud.sqs.get_queue_attributes(QueueUrl=cloud.url(uploads.QUEUE),
                                         AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # The template's notification: created CSVs under uploads/ go to the upload queue.
    boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION).put_bucket_notification_configuration(
        Bucket=cloud.env["LUNAMAIL_S3_BUCKET"],
        NotificationConfiguration={"QueueConfigurations": [{
            "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": uploads.PREFIX},
                                               {"Name": "suffix", "Value": ".csv"}]}},
        }]},
    )
    yield cloud
    uploads.reset()
    aws.reset()


@pytest.fixture
def admin(cloud: Aws) -> Iterator[System]:
    with build_system(Settings.load()) as system:
        yield system


def test_an_upload_to_the_presigned_url_starts_its_import(cloud: Aws, admin: System,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    env, actor = Env(admin.deps, admin.bus.publish), Actor("acme")
    lst = app_audience.create_list(env, actor, app_audience.NewList(name="News"))
    declared = app_audience.declare_import(env, actor, lst["id"])
    put = urllib.request.Request(declared["upload"]["url"], data=CSV, method="PUT",
                                 headers={"Content-Type": "text/csv"})
    with urllib.request.urlopen(put, timeout=30) as resp:
        assert resp.status == 200

    event = cloud.poll(uploads.QUEUE)  # with S3's test event, sent when notifications were set
    found = [uploads.uploads_in(r["body"].encode()) for r in event["Records"]]
    assert sorted(found) == [[], [("acme", declared["id"])]]
    assert cloud.invoke(uploads.upload_handler, uploads.QUEUE, event) == []
    # The import started: its first chunk is on the import queue; run it as Lambda would.
    monkeypatch.setenv("LUNAMAIL_LAMBDA_QUEUE", CHUNKS)
    chunk = cloud.poll(CHUNKS)
    assert len(chunk["Records"]) == 1
    assert cloud.invoke(aws.sqs_handler, CHUNKS, chunk) == []
    job = app_audience.get_import(env, actor, declared["id"])
    assert (job["status"], job["imported"]) == ("completed", 5)
    items, _ = audience.list_subscribers(admin.deps, "acme", lst["id"])
    assert {s["email"] for s in items} == {f"u{i}@example.org" for i in range(5)}
    # The same notification again (S3 delivers at least once) starts nothing new.
    assert uploads.upload_handler(event, None) == {"batchItemFailures": []}
    assert cloud.poll(CHUNKS)["Records"] == []


def test_an_undeclared_upload_is_left_alone(cloud: Aws, admin: System) -> None:
    admin.blobs.put("uploads/acme/deadbeef.csv", CSV, content_type="text/csv")
    admin.blobs.put("uploads/acme/notes.txt", b"hello", content_type="text/plain")
    event = cloud.poll(uploads.QUEUE)
    found = [uploads.uploads_in(r["body"].encode()) for r in event["Records"]]
    assert sorted(found) == [[], [("acme", "deadbeef")]]  # S3's test event names nothing
    assert cloud.invoke(uploads.upload_handler, uploads.QUEUE, event) == []
    assert cloud.poll(CHUNKS)["Records"] == []
