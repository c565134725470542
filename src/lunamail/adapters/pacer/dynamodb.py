"""Pacer shared by every Lambda function (and any machine) through one DynamoDB item.

The item holds the same ``PaceState`` the SQLite pacer keeps in its row: the next free
send slot (a token bucket with a burst of one, in its virtual-scheduling form: a slot is
taken by moving ``next_free`` on by ``1/rate``), the throttle back-off and, with a send
window, the recent reservations.  Each ``reserve`` reads the item and writes it back
under a version check; a writer that lost the race reads again.  Callers reserve chunks
(``pacing.chunk_size``: about a quarter second of slots), so even fifty concurrent senders
write the item a few hundred times a second at most, within one partition's 1,000 writes/s.

Key: ``pk = "SYS#PACE"``, ``sk = name`` in the single table (not an account's key: the
provider's rate is the installation's).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import ClientError

from lunamail.lib import pacing
from lunamail.ports.clock import Clock, SystemClock

PK = "SYS#PACE"
T = TypeVar("T")


class PacerContention(RuntimeError):
    """Too many writers raced for the pacer item; the caller's send waits for a retry."""


class DynamoPacer:
    """``name`` keys the schedule, so one table can pace several senders apart."""

    def __init__(
        self,
        table: str,
        config: pacing.PaceConfig,
        *,
        name: str = "default",
        clock: Clock | None = None,
        client: Any = None,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        max_tries: int = 64,
    ) -> None:
        self.config = config
        self.table = table
        self.name = name
        self._clock = clock or SystemClock()
        self._own_client = client is None
        self._client = client or boto3.client(
            "dynamodb", endpoint_url=endpoint_url, region_name=region,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )
        self._max_tries = max_tries
        self._lock = threading.Lock()  # threads of one process take turns; processes race

    def _key(self) -> dict[str, Any]:
        return {"pk": {"S": PK}, "sk": {"S": self.name}}

    def _load(self) -> tuple[pacing.PaceState, int]:
        item = self._client.get_item(TableName=self.table, Key=self._key(), ConsistentRead=True).get("Item")
        if not item:
            return pacing.PaceState(), 0
        return pacing.PaceState.from_json(orjson.loads(item["state"]["S"])), int(item["v"]["N"])

    def _save(self, state: pacing.PaceState, version: int) -> bool:
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"} if version == 0 else {
                "ConditionExpression": "v = :v",
                "ExpressionAttributeValues": {":v": {"N": str(version)}},
            }
        )
        try:
            self._client.put_item(
                TableName=self.table,
                Item={**self._key(), "state": {"S": orjson.dumps(state.to_json()).decode()},
                      "v": {"N": str(version + 1)}},
                **condition,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _change(self, step: Callable[[pacing.PaceState, float], T]) -> T:
        with self._lock:
            for attempt in range(self._max_tries):
                state, version = self._load()
                out = step(state, self._clock.now())
                if self._save(state, version):
                    return out
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))  # back off, unsynchronised
        raise PacerContention(f"pacer {self.name!r}: {self._max_tries} writers won the race first")

    def reserve(self, n: int) -> tuple[float, float]:
        if not self.config.limited:
            if n <= 0:
                raise ValueError("reserve at least one slot")
            return self._clock.now(), 0.0
        return self._change(lambda state, now: pacing.reserve(self.config, state, n, now))

    def throttled(self) -> None:
        if self.config.rate > 0:
            self._change(lambda state, now: pacing.throttle(self.config, state, now))

    def current_rate(self) -> float:
        state, _ = self._load()
        return pacing.current_rate(self.config, state, self._clock.now())

    def close(self) -> None:
        if self._own_client:
            self._client.close()
