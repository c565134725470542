"""The Lambda entrypoint end to end on moto (DynamoDB, S3, SQS, SES, Secrets Manager).

Events are built the way Lambda's SQS poller builds them: messages published by
the adapter, received from SQS, and reshaped into records with exactly the keys of
the real-shaped fixtures in ``tests/events/sqs_*.json``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from lunamail.adapters.itemstore.dynamodb import create_table
from lunamail.adapters.queue.sqs import SqsQueue, incoming_from_record, sqs_queue_name
from lunamail.config import Settings
from lunamail.domain.messages import from_json
from lunamail.entrypoints import aws
from lunamail.entrypoints.aws.system import build_system
from lunamail.runtime.bootstrap import System
from lunamail.services.audience import api as audience
from tests.support.fixtures import moto_endpoint

__all__ = ["moto_endpoint"]  # the fixture, imported for pytest

EVENTS = Path(__file__).resolve().parents[1] / "events"
REGION = "us-east-1"
QUEUE = "audience.import_chunk"
CSV = b"email,name\n" + b"".join(b"user%d@example.org,User %d\n" % (i, i) for i in range(7))


def _fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EVENTS / name).read_text("utf-8"))
    return doc


class Aws:
    """The moto-backed account of one test, and helpers to play Lambda's poller."""

    def __init__(self, endpoint: str, prefix: str) -> None:
        self.endpoint, self.prefix = endpoint, prefix
        self.sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)

    def url(self, queue: str) -> str:
        return str(self.sqs.get_queue_url(QueueName=sqs_queue_name(self.prefix, queue))["QueueUrl"])

    def poll(self, queue: str, max_messages: int = 10) -> dict[str, Any]:
        """One ReceiveMessage, reshaped into a Lambda SQS event."""
        url = self.url(queue)
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        resp = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=max_messages,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        return {"Records": [self._record(m, arn) for m in resp.get("Messages", [])]}

    @staticmethod
    def _record(m: dict[str, Any], arn: str) -> dict[str, Any]:
        attrs = m.get("Attributes", {})
        return {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {
                k: attrs.get(k, "")
                for k in (
                    "ApproximateReceiveCount", "SentTimestamp", "SenderId",
                    "ApproximateFirstReceiveTimestamp",
                )
            },
            "messageAttributes": {
                name: {
                    "stringValue": spec.get("StringValue"),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": spec["DataType"],
                }
                for name, spec in m.get("MessageAttributes", {}).items()
            },
            "md5OfMessageAttributes": m.get("MD5OfMessageAttributes"),
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": REGION,
        }

    def invoke(self, event: dict[str, Any]) -> list[str]:
        """Run the handler as Lambda does: delete the records not reported as failures;
        returns the failed message ids."""
        result = aws.sqs_handler(event, None)
        failed = [f["itemIdentifier"] for f in result["batchItemFailures"]]
        for r in event["Records"]:
            if r["messageId"] not in failed:
                self.sqs.delete_message(
                    QueueUrl=self.url(QUEUE), ReceiptHandle=r["receiptHandle"]
                )
        return failed

    def depth(self, queue: str) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.url(queue),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())


@pytest.fixture
def cloud(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """A fresh table, bucket, secret and every routed queue; the Lambda environment
    the template sets, pointed at moto."""
    tag = uuid.uuid4().hex[:10]
    table, bucket, prefix = f"lm-{tag}", f"lm-{tag}", f"lm{tag}-"
    create_table(boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION), table)
    boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION).create_bucket(Bucket=bucket)
    secret = boto3.client(
        "secretsmanager", endpoint_url=moto_endpoint, region_name=REGION
    ).create_secret(Name=f"lm-master-{tag}", SecretString=uuid.uuid4().hex * 2)["ARN"]
    # Only the queue these tests publish to (creating all 38 pairs takes seconds on moto);
    # the template test checks that every routed queue is deployed.
    SqsQueue(prefix=prefix, endpoint_url=moto_endpoint).ensure([QUEUE])
    env = {
        "LUNAMAIL_DATA_DIR": str(tmp_path / "data"),
        "LUNAMAIL_STORE": "dynamodb",
        "LUNAMAIL_QUEUE": "sqs",
        "LUNAMAIL_BLOBS": "s3",
        "LUNAMAIL_DYNAMODB_TABLE": table,
        "LUNAMAIL_S3_BUCKET": bucket,
        "LUNAMAIL_SQS_PREFIX": prefix,
        "LUNAMAIL_AWS_ENDPOINT_URL": moto_endpoint,
        "LUNAMAIL_AWS_REGION": REGION,
        "LUNAMAIL_MASTER_KEY_SECRET": secret,
        "LUNAMAIL_IMPORT_CHUNK_ROWS": "3",
        "LUNAMAIL_LAMBDA_QUEUE": QUEUE,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    aws.reset()
    yield Aws(moto_endpoint, prefix)
    aws.reset()


@pytest.fixture
def admin(cloud: Aws) -> Iterator[System]:
    """The same system a function builds, for set-up and for reading results."""
    with build_system(Settings.load()) as system:
        yield system


def _start_import(admin: System) -> tuple[str, str]:
    lst = audience.create_list(admin.deps, "acme", "Newsletter")
    admin.blobs.put("uploads/acme/news.csv", CSV, content_type="text/csv")
    job, first = audience.start_import(admin.deps, "acme", lst["id"], "uploads/acme/news.csv")
    admin.bus.publish(first)  # what the HTTP API does: the first chunk goes to SQS
    return str(lst["id"]), str(job["id"])


def test_records_are_shaped_like_the_fixtures(cloud: Aws, admin: System) -> None:
    _start_import(admin)
    event = cloud.poll(QUEUE)
    [record] = event["Records"]
    [reference] = _fixture("sqs_import_chunk.json")["Records"]
    assert set(record) == set(reference)
    assert set(record["attributes"]) == set(reference["attributes"])
    assert set(record["messageAttributes"]) == set(reference["messageAttributes"])
    assert set(record["messageAttributes"]["lm_id"]) == set(reference["messageAttributes"]["lm_id"])


def test_fixture_records_decode() -> None:
    [rec] = _fixture("sqs_import_chunk.json")["Records"]
    got = incoming_from_record("audience.import_chunk", rec).received
    assert (got.id, got.attempts, got.enqueued_at) == ("8c1f5a0b2d3e4f5a6b7c8d9e0f1a2b3c", 2, 1715677960.0995)
    msg = from_json(got.body)
    assert msg.NAME == "audience.ImportChunk" and msg.account == "acme"
    [rec] = _fixture("sqs_binary_and_long_delay.json")["Records"]
    early = incoming_from_record("delivery.send_batch", rec)
    assert early.received.body == b"\x00hello\xff"
    assert early.due == 1715681560.0995


def test_import_chain_runs_on_lambda_and_a_bad_record_fails_alone(
    cloud: Aws, admin: System
) -> None:
    list_id, import_id = _start_import(admin)
    poison_id = SqsQueue(prefix=cloud.prefix, endpoint_url=cloud.endpoint).send(QUEUE, b"not json")
    event = cloud.poll(QUEUE)
    assert len(event["Records"]) == 2
    poison = next(r for r in event["Records"] if r["body"] == "not json")

    assert cloud.invoke(event) == [poison["messageId"]]
    job = audience.get_import(admin.deps, "acme", import_id)
    assert (job["status"], job["imported"]) == ("running", 3)  # one chunk of 3 rows
    # The good record published the next chunk to its queue; the bad one waits out its
    # backoff (hidden, not lost) and carries its logical id.
    nxt = cloud.poll(QUEUE)["Records"]
    assert [from_json(r["body"]).NAME for r in nxt] == ["audience.ImportChunk"]
    assert cloud.depth(QUEUE) == 2
    assert incoming_from_record(QUEUE, poison).received.id == poison_id

    # Run the chain to its end, as the event source mapping would.
    assert cloud.invoke({"Records": nxt}) == []
    for _ in range(5):
        event = cloud.poll(QUEUE)
        if not event["Records"]:
            break
        assert cloud.invoke(event) == []
    job = audience.get_import(admin.deps, "acme", import_id)
    assert (job["status"], job["imported"], job["rejected"]) == ("completed", 7, 0)
    items, _ = audience.list_subscribers(admin.deps, "acme", list_id)
    emails = {s["email"] for s in items}
    assert emails == {f"user{i}@example.org" for i in range(7)}


def test_last_attempt_goes_to_the_dead_letter_queue_with_its_error(
    cloud: Aws, admin: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUNAMAIL_MAX_ATTEMPTS", "1")
    aws.reset()
    queue = SqsQueue(prefix=cloud.prefix, endpoint_url=cloud.endpoint)
    mid = queue.send(QUEUE, b'{"name":"no.such.Message","body":{}}')
    event = cloud.poll(QUEUE)
    assert aws.sqs_handler(event, None)["batchItemFailures"] == [
        {"itemIdentifier": event["Records"][0]["messageId"]}
    ]
    assert cloud.depth(QUEUE) == 0
    [dead] = queue.dead_letters()
    assert (dead.id, dead.queue) == (mid, QUEUE)
    assert dead.error.startswith("UnknownMessage: unknown message type 'no.such.Message'")


def test_queue_comes_from_the_event_source_arn_when_not_configured(
    cloud: Aws, admin: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LUNAMAIL_LAMBDA_QUEUE")
    aws.reset()
    _, import_id = _start_import(admin)
    assert cloud.invoke(cloud.poll(QUEUE)) == []
    assert audience.get_import(admin.deps, "acme", import_id)["imported"] == 3
