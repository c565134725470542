"""Shared set-up for the Lambda tests (no tests here): a moto account with the table,
bucket, master-key secret and chosen queues, the environment the template gives every
function, and a helper that plays Lambda's SQS poller.

Records are reshaped from ``ReceiveMessage`` with exactly the keys of the real-shaped
fixtures in ``tests/events/sqs_*.json``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import boto3
import pytest

from lunamail.adapters.itemstore.dynamodb import create_table
from lunamail.adapters.queue.sqs import SqsQueue, sqs_queue_name
from lunamail.domain.messages import Message, from_json
from lunamail.runtime.routing import default_router
from tests.support.deploy import deploy_module

REGION = "us-east-1"


class Aws:
    """The moto-backed account of one test, and helpers to play Lambda's poller."""

    def __init__(self, endpoint: str, prefix: str, env: dict[str, str]) -> None:
        self.endpoint, self.prefix, self.env = endpoint, prefix, env
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
        return {"Records": [sqs_record(m, arn) for m in resp.get("Messages", [])]}

    def messages(self, queue: str) -> list[Message]:
        """Every Lunamail message waiting on ``queue`` (received and deleted)."""
        out: list[Message] = []
        while True:
            records = self.poll(queue)["Records"]
            if not records:
                return out
            for r in records:
                out.append(from_json(r["body"]))
                self.sqs.delete_message(QueueUrl=self.url(queue), ReceiptHandle=r["receiptHandle"])

    def invoke(
        self, handler: Callable[[dict[str, Any], Any], dict[str, Any]], queue: str,
        event: dict[str, Any],
    ) -> list[str]:
        """Run an SQS handler as Lambda does: delete the records not reported as
        failures; returns the failed message ids."""
        result = handler(event, None)
        failed = [f["itemIdentifier"] for f in result["batchItemFailures"]]
        for r in event["Records"]:
            if r["messageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url(queue), ReceiptHandle=r["receiptHandle"])
        return failed

    def depth(self, queue: str) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.url(queue),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())


def sqs_record(m: dict[str, Any], arn: str) -> dict[str, Any]:
    """A ReceiveMessage message as the record Lambda's SQS poller hands the function."""
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


def consumers_of(*messages: type[Message]) -> list[str]:
    """The routed queues that receive any of ``messages``."""
    names = {cls.NAME for cls in messages}
    return [q for q, subs in default_router().subscriptions().items() if names & set(subs)]


def make_cloud(
    endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    queues: Iterable[str],
    **env_extra: str,
) -> Aws:
    """A fresh table, bucket and secret, the given queues (creating all ~40 pairs takes
    seconds on moto; the template test checks that every routed queue is deployed), and
    the Lambda environment the template sets, pointed at moto."""
    tag = uuid.uuid4().hex[:10]
    table, bucket, prefix = f"lm-{tag}", f"lm-{tag}", f"lm{tag}-"
    create_table(boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION), table)
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=bucket)
    secret = boto3.client(
        "secretsmanager", endpoint_url=endpoint, region_name=REGION
    ).create_secret(Name=f"lm-master-{tag}", SecretString=uuid.uuid4().hex * 2)["ARN"]
    SqsQueue(prefix=prefix, endpoint_url=endpoint).ensure(list(queues))
    env = {
        "LUNAMAIL_DATA_DIR": str(tmp_path / "data"),
        "LUNAMAIL_STORE": "dynamodb",
        "LUNAMAIL_QUEUE": "sqs",
        "LUNAMAIL_BLOBS": "s3",
        "LUNAMAIL_DYNAMODB_TABLE": table,
        "LUNAMAIL_S3_BUCKET": bucket,
        "LUNAMAIL_SQS_PREFIX": prefix,
        "LUNAMAIL_AWS_ENDPOINT_URL": endpoint,
        "LUNAMAIL_AWS_REGION": REGION,
        "LUNAMAIL_MASTER_KEY_SECRET": secret,
        **env_extra,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Aws(endpoint, prefix, env)


def deploy_event_rules(cloud: Aws, queues: Iterable[str]) -> str:
    """The template's event bus and, for ``queues``, its generated rules (same patterns,
    same SQS targets), made through the EventBridge API; returns the bus name."""
    gen = deploy_module("generate")
    events = boto3.client("events", endpoint_url=cloud.endpoint, region_name=REGION)
    bus = f"{cloud.prefix}events"
    events.create_event_bus(Name=bus)
    resources = gen.template()["Resources"]
    for queue in queues:
        rule = resources.get(f"{gen.resource_id(queue)}Rule")
        if rule is None:
            continue  # a handler of commands only: nothing on the bus for it
        name = f"{cloud.prefix}{gen.resource_id(queue)}"
        events.put_rule(Name=name, EventBusName=bus,
                        EventPattern=json.dumps(rule["Properties"]["EventPattern"]))
        arn = cloud.sqs.get_queue_attributes(QueueUrl=cloud.url(queue), AttributeNames=["QueueArn"])
        events.put_targets(Rule=name, EventBusName=bus,
                           Targets=[{"Id": "queue", "Arn": arn["Attributes"]["QueueArn"]}])
    return bus
