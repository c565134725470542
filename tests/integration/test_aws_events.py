"""Domain events on EventBridge, on moto: the bus publishes an event once, the generated
rules carry it to each consumer's queue, and the real queue function runs it; commands
still go to their queue directly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunamail.adapters.events.eventbridge import message_of
from lunamail.config import Settings
from lunamail.domain.audience import ImportChunk
from lunamail.domain.messages import from_json
from lunamail.domain.tracking import Opened
from lunamail.entrypoints import aws
from lunamail.entrypoints.aws.system import build_system
from lunamail.runtime.bootstrap import System
from lunamail.services.reports import api as reports
from tests.support.fixtures import moto_endpoint

from .aws_fixtures import Aws, consumers_of, deploy_event_rules, make_cloud

__all__ = ["moto_endpoint"]

[OPENS] = consumers_of(Opened)
[CHUNKS] = consumers_of(ImportChunk)


@pytest.fixture
def cloud(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    aws.reset()
    cloud = make_cloud(moto_endpoint, tmp_path, monkeypatch, [OPENS, CHUNKS])
    monkeypatch.setenv("LUNAMAIL_EVENT_BUS", deploy_event_rules(cloud, [OPENS, CHUNKS]))
    yield cloud
    aws.reset()


@pytest.fixture
def admin(cloud: Aws) -> Iterator[System]:
    with build_system(Settings.load()) as system:
        yield system


def test_events_go_through_the_bus_and_commands_straight_to_their_queue(
    cloud: Aws, admin: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = Opened(account="acme", campaign="c1", email="ann@example.org", machine=False,
                    at=1_700_000_000.0, id="open-1")
    chunk = ImportChunk(account="acme", import_id="i1", offset=0, line=1)
    admin.bus.publish([opened, chunk])

    [record] = cloud.poll(OPENS)["Records"]
    envelope = json.loads(record["body"])  # what an EventBridge rule's SQS target receives
    assert (envelope["source"], envelope["detail-type"]) == ("lunamail", "tracking.Opened")
    assert from_json(message_of(record["body"].encode())) == opened
    [command] = cloud.poll(CHUNKS)["Records"]
    assert "detail-type" not in command["body"] and from_json(command["body"]) == chunk

    # The queue function takes the event out of the envelope and runs its handler.
    monkeypatch.setenv("LUNAMAIL_LAMBDA_QUEUE", OPENS)
    aws.reset()
    assert cloud.invoke(aws.sqs_handler, OPENS, {"Records": [record]}) == []
    assert reports.campaign_report(admin.deps, "acme", "c1")["opened"]["total"] == 1


def test_a_body_that_is_not_an_envelope_is_left_as_it_is() -> None:
    assert message_of(b'{"name":"x","body":{}}') == b'{"name":"x","body":{}}'
    foreign = b'{"detail-type":"x","source":"elsewhere","detail":{}}'
    assert message_of(foreign) == foreign
