"""SES event notifications through SNS into SQS and the real feedback function, on moto.

Moto's SNS wraps each published SES notification in the envelope SNS delivers to an
SQS subscription; the records the function gets are those messages as Lambda's poller
shapes them (the keys of ``tests/events/sqs_sns_ses_bounce.json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from lunamail.domain.feedback import Bounced, Complained, Delivered
from lunamail.entrypoints.aws import feedback
from tests.support.events import load_event
from tests.support.fixtures import moto_endpoint

from .aws_fixtures import REGION, Aws, consumers_of, make_cloud

__all__ = ["moto_endpoint"]

QUEUE = feedback.QUEUE
SES_EVENTS = [
    "ses_bounce_permanent.json", "ses_complaint.json", "ses_delivery.json", "ses_reject.json",
    "ses_delivery_delay.json",
]


@pytest.fixture
def cloud(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    feedback.reset()
    cloud = make_cloud(
        moto_endpoint, tmp_path, monkeypatch, [QUEUE, *consumers_of(Bounced, Complained, Delivered)]
    )
    yield cloud
    feedback.reset()


@pytest.fixture
def topic(cloud: Aws) -> str:
    """The SES events topic, subscribed by the feedback queue as the template does."""
    sns = boto3.client("sns", endpoint_url=cloud.endpoint, region_name=REGION)
    arn = str(sns.create_topic(Name=f"{cloud.prefix}ses-events")["TopicArn"])
    queue_arn = cloud.sqs.get_queue_attributes(
        QueueUrl=cloud.url(QUEUE), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
    return arn


def _publish(cloud: Aws, topic: str, names: list[str]) -> None:
    sns = boto3.client("sns", endpoint_url=cloud.endpoint, region_name=REGION)
    for name in names:
        sns.publish(
            TopicArn=topic, Message=json.dumps(load_event(name)),
            Subject="Amazon SES Email Event Notification",
        )


def test_the_fixture_record_is_what_sns_delivers_to_sqs(cloud: Aws, topic: str) -> None:
    _publish(cloud, topic, ["ses_delivery.json"])
    [record] = cloud.poll(QUEUE)["Records"]
    [reference] = load_event("sqs_sns_ses_bounce.json")["Records"]
    assert set(reference) <= set(record)
    ours, theirs = json.loads(record["body"]), json.loads(reference["body"])
    assert {"Type", "MessageId", "TopicArn", "Message", "Timestamp"} <= set(ours) & set(theirs)
    assert ours["Type"] == theirs["Type"] == "Notification"


def test_bounce_complaint_delivery_reach_their_consumers_once(cloud: Aws, topic: str) -> None:
    _publish(cloud, topic, SES_EVENTS)
    event = cloud.poll(QUEUE)
    assert len(event["Records"]) == len(SES_EVENTS)
    # Lambda retries a batch whose answer was lost: the second run emits the same ids.
    feedback.ses_feedback_handler(event, None)
    assert cloud.invoke(feedback.ses_feedback_handler, QUEUE, event) == []

    for queue in consumers_of(Bounced):  # the guard, the audience, the report, soft-bounce counting
        got = cloud.messages(queue)
        assert len(got) == 4 and len({m.id for m in got if isinstance(m, Bounced)}) == 2, queue
        assert sorted({(b.account, b.email, b.bounce_type, b.campaign) for b in got
                       if isinstance(b, Bounced)}) == [
            ("acme", "jdoe@example.net", "hard", "spring-sale"),
            ("acme", "pat.kim@example.org", "hard", "spring-sale"),
        ]
    for queue in consumers_of(Complained):
        got = cloud.messages(queue)
        assert {(c.email, c.campaign) for c in got if isinstance(c, Complained)} == {
            ("casey@example.com", "spring-sale")
        } and len({c.id for c in got if isinstance(c, Complained)}) == 1
    [queue] = consumers_of(Delivered)
    assert {d.email for d in cloud.messages(queue) if isinstance(d, Delivered)} == {"sam@example.com"}
    # Each notification is stored under its account before it is mapped.
    s3 = boto3.client("s3", endpoint_url=cloud.endpoint, region_name=REGION)
    listed = s3.list_objects_v2(Bucket=cloud.env["LUNAMAIL_S3_BUCKET"], Prefix="inbound-ses/acme/")
    assert len(listed.get("Contents", [])) == len(SES_EVENTS)


def test_a_record_that_is_not_json_fails_alone(cloud: Aws, topic: str) -> None:
    _publish(cloud, topic, ["ses_delivery.json"])
    cloud.sqs.send_message(QueueUrl=cloud.url(QUEUE), MessageBody="not json")
    event = cloud.poll(QUEUE)
    poison = next(r["messageId"] for r in event["Records"] if r["body"] == "not json")
    assert cloud.invoke(feedback.ses_feedback_handler, QUEUE, event) == [poison]
    assert len(cloud.messages(consumers_of(Delivered)[0])) == 1
