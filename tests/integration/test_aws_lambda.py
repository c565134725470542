"""The Lambda entrypoint end to end on moto (DynamoDB, S3, SQS, SES, Secrets Manager).

Events are built the way Lambda's SQS poller builds them: messages published by
the adapter, received from SQS, and reshaped into records with exactly the keys of
the real-shaped fixtures in ``tests/events/sqs_*.json``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lunamail.adapters.queue.sqs import SqsQueue, incoming_from_record
from lunamail.config import Settings
from lunamail.domain.messages import from_json
from lunamail.domain.tracking import Opened
from lunamail.entrypoints import aws
from lunamail.entrypoints.aws import sqs as sqs_entry
from lunamail.entrypoints.aws.system import build_system
from lunamail.ports.handlers import BatchSpec, batch_of
from lunamail.runtime.bootstrap import System
from lunamail.services.audience import api as audience
from lunamail.services.reports import api as reports
from tests.support.events import load_event
from tests.support.fixtures import moto_endpoint

from .aws_fixtures import Aws, consumers_of, make_cloud

__all__ = ["moto_endpoint"]  # the fixture, imported for pytest

QUEUE = "audience.import_chunk"
CSV = b"email,name\n" + b"".join(b"user%d@example.org,User %d\n" % (i, i) for i in range(7))


@pytest.fixture
def cloud(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """A fresh account with the one queue these tests publish to."""
    aws.reset()
    yield make_cloud(
        moto_endpoint, tmp_path, monkeypatch, [QUEUE],
        LUNAMAIL_IMPORT_CHUNK_ROWS="3", LUNAMAIL_LAMBDA_QUEUE=QUEUE,
    )
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
    [reference] = load_event("sqs_import_chunk.json")["Records"]
    assert set(record) == set(reference)
    assert set(record["attributes"]) == set(reference["attributes"])
    assert set(record["messageAttributes"]) == set(reference["messageAttributes"])
    assert set(record["messageAttributes"]["lm_id"]) == set(reference["messageAttributes"]["lm_id"])


def test_fixture_records_decode() -> None:
    [rec] = load_event("sqs_import_chunk.json")["Records"]
    got = incoming_from_record("audience.import_chunk", rec).received
    assert (got.id, got.attempts, got.enqueued_at) == ("8c1f5a0b2d3e4f5a6b7c8d9e0f1a2b3c", 2, 1715677960.0995)
    msg = from_json(got.body)
    assert msg.NAME == "audience.ImportChunk" and msg.account == "acme"
    [rec] = load_event("sqs_binary_and_long_delay.json")["Records"]
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

    assert cloud.invoke(aws.sqs_handler, QUEUE, event) == [poison["messageId"]]
    job = audience.get_import(admin.deps, "acme", import_id)
    assert (job["status"], job["imported"]) == ("running", 3)  # one chunk of 3 rows
    # The good record published the next chunk to its queue; the bad one waits out its
    # backoff (hidden, not lost) and carries its logical id.
    # (On a slow machine the poison record's short backoff may be over already: skip it.)
    nxt = [r for r in cloud.poll(QUEUE)["Records"] if r["body"] != "not json"]
    assert [from_json(r["body"]).NAME for r in nxt] == ["audience.ImportChunk"]
    assert cloud.depth(QUEUE) == 2
    assert incoming_from_record(QUEUE, poison).received.id == poison_id

    # Run the chain to its end, as the event source mapping would.
    assert cloud.invoke(aws.sqs_handler, QUEUE, {"Records": nxt}) == []
    for _ in range(5):
        records = [r for r in cloud.poll(QUEUE)["Records"] if r["body"] != "not json"]
        if not records:
            break
        assert cloud.invoke(aws.sqs_handler, QUEUE, {"Records": records}) == []
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
    assert cloud.invoke(aws.sqs_handler, QUEUE, cloud.poll(QUEUE)) == []
    assert audience.get_import(admin.deps, "acme", import_id)["imported"] == 3


def test_a_batch_form_takes_the_whole_event_and_a_bad_record_still_fails_alone(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [opens] = consumers_of(Opened)  # the report's counter, a handler with a batch form
    aws.reset()
    cloud = make_cloud(moto_endpoint, tmp_path, monkeypatch, [opens], LUNAMAIL_LAMBDA_QUEUE=opens)
    calls: list[int] = []

    def counted(handler: Any) -> BatchSpec | None:
        spec = batch_of(handler)
        if spec is None:
            return None

        def handle(messages: Any, deps: Any) -> Any:
            calls.append(len(messages))
            return spec.handle(messages, deps)

        return BatchSpec(handle, spec.max_size)

    monkeypatch.setattr(sqs_entry, "batch_of", counted)

    def opened(n: int) -> Opened:
        return Opened(account="acme", campaign="c1", email=f"r{n}@example.org", machine=False,
                      at=1_700_000_000.0, id=f"open-{n}")

    try:
        with build_system(Settings.load()) as admin:
            admin.bus.publish([opened(n) for n in range(8)])
            event = cloud.poll(opens)
            assert len(event["Records"]) == 8
            assert cloud.invoke(aws.sqs_handler, opens, event) == []
            assert calls == [8]  # one call of the batch form for the whole event
            assert reports.campaign_report(admin.deps, "acme", "c1")["opened"]["unique"] == 8

            # A record that is no message: the batch form raises, each record runs alone.
            admin.bus.publish([opened(n) for n in range(8, 11)])
            poison = SqsQueue(prefix=cloud.prefix, endpoint_url=cloud.endpoint).send(opens, b"not json")
            event = cloud.poll(opens)
            bad = next(r["messageId"] for r in event["Records"] if r["body"] == "not json")
            assert cloud.invoke(aws.sqs_handler, opens, event) == [bad]
            assert calls == [8]  # the batch form never ran on the bad event
            assert incoming_from_record(opens, next(
                r for r in event["Records"] if r["messageId"] == bad)).received.id == poison
            assert reports.campaign_report(admin.deps, "acme", "c1")["opened"]["unique"] == 11
    finally:
        aws.reset()
