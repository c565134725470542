"""The Pacer contract on every backend: in-process, SQLite, and DynamoDB on moto."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from lunamail.adapters.itemstore.dynamodb import create_table
from lunamail.adapters.pacer import LocalPacer, SqlitePacer
from lunamail.adapters.pacer.dynamodb import DynamoPacer
from lunamail.lib.pacing import PaceConfig
from lunamail.ports.pacer import Pacer

from .pacer_contract import Make, PacerContract


class TestLocalPacer(PacerContract):
    @pytest.fixture
    def make(self) -> Make:
        made: dict[PaceConfig, LocalPacer] = {}

        def make(config: PaceConfig, clock: Any) -> Pacer:
            if config not in made:  # one process: every handle is the one pacer
                made[config] = LocalPacer(config, clock)
            return made[config]

        return make


class TestSqlitePacer(PacerContract):
    @pytest.fixture
    def make(self, tmp_path: Path) -> Iterator[Make]:
        made: list[SqlitePacer] = []

        def make(config: PaceConfig, clock: Any) -> Pacer:
            made.append(SqlitePacer(tmp_path / "pace.db", config, clock=clock))
            return made[-1]

        yield make
        for p in made:
            p.close()


class TestDynamoPacer(PacerContract):
    # moto checks a condition and writes without a lock, so racing writers can both win
    # inside the emulator; DynamoDB applies a conditional put atomically.
    concurrent_threads = 1

    @pytest.fixture
    def make(self, moto_endpoint: str) -> Iterator[Make]:
        client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
        table = f"pace-{uuid.uuid4().hex[:12]}"
        create_table(client, table)

        def make(config: PaceConfig, clock: Any) -> Pacer:
            return DynamoPacer(table, config, clock=clock, client=client)

        yield make
        client.delete_table(TableName=table)
