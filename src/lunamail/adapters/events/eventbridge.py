"""The EventPublisher port on Amazon EventBridge ``PutEvents``.

Each event is one entry: ``Source`` is ``lunamail``, ``DetailType`` the message name
(``delivery.BatchSent``), ``Detail`` the message JSON, so a rule matches an event type
by ``detail-type`` and its target receives the message in ``detail``.  Entries go out
ten per call (the API's limit) and within 256 KiB per call; entries EventBridge reports
as failed are sent again, a few times, before ``put`` raises.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import orjson
from botocore.config import Config

SOURCE = "lunamail"
MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024


class PublishFailed(RuntimeError):
    """Some events could not be put on the bus."""


def entry_size(detail_type: str, detail: bytes) -> int:
    """What EventBridge counts against the 256 KiB request limit for one entry."""
    return len(SOURCE) + len(detail_type.encode()) + len(detail)


def message_of(body: bytes) -> bytes:
    """The message JSON in a queue body: an EventBridge event (what a rule's SQS target
    receives: the event with the message in ``detail``) is unwrapped; anything else (a
    command sent to the queue directly) is returned as it is."""
    if b'"detail-type"' not in body[:4096]:
        return body
    doc = orjson.loads(body)
    if isinstance(doc, dict) and doc.get("source") == SOURCE and isinstance(doc.get("detail"), dict):
        return orjson.dumps(doc["detail"])
    return body


class EventBridgePublisher:
    def __init__(
        self,
        bus: str,
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        tries: int = 4,
    ) -> None:
        self.bus = bus
        self._own = client is None
        self._client = client or boto3.client(
            "events", endpoint_url=endpoint_url, region_name=region,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )
        self._tries = tries

    def _calls(self, events: Sequence[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
        call: list[tuple[str, bytes]] = []
        size = 0
        for name, body in events:
            n = entry_size(name, body)
            if n > MAX_REQUEST_BYTES:
                raise PublishFailed(f"{name}: {n} bytes is over EventBridge's {MAX_REQUEST_BYTES}")
            if call and (len(call) == MAX_ENTRIES or size + n > MAX_REQUEST_BYTES):
                yield call
                call, size = [], 0
            call.append((name, body))
            size += n
        if call:
            yield call

    def put(self, events: Sequence[tuple[str, bytes]]) -> list[str]:
        ids: list[str] = []
        for call in self._calls(events):
            ids.extend(self._put_call(call))
        return ids

    def _put_call(self, call: list[tuple[str, bytes]]) -> list[str]:
        ids: list[str | None] = [None] * len(call)
        todo = list(range(len(call)))
        error = ""
        for attempt in range(self._tries):
            entries = [
                {"Source": SOURCE, "DetailType": call[i][0], "Detail": call[i][1].decode("utf-8"),
                 "EventBusName": self.bus}
                for i in todo
            ]
            resp = self._client.put_events(Entries=entries)
            failed = []
            for i, result in zip(todo, resp.get("Entries", []), strict=False):
                if result.get("EventId"):
                    ids[i] = str(result["EventId"])
                else:
                    failed.append(i)
                    error = f"{result.get('ErrorCode')}: {result.get('ErrorMessage')}"
            todo = failed
            if not todo:
                return [i for i in ids if i is not None]
            time.sleep(0.05 * 2**attempt)
        raise PublishFailed(f"{len(todo)} event(s) not put on {self.bus}: {error}")

    def close(self) -> None:
        if self._own:
            self._client.close()
