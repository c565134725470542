"""The ItemStore contract on DynamoItemStore, against moto in server mode over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from lunamail.adapters.itemstore.dynamodb import DynamoItemStore, create_table
from lunamail.ports.itemstore import ItemStore

from .itemstore_contract import ItemStoreContract


class TestDynamoItemStore(ItemStoreContract):
    # moto applies UpdateItem as an unlocked read-modify-write, so concurrent ADDs race
    # inside the emulator; DynamoDB itself applies ADD atomically.
    concurrent_writers = 1

    @pytest.fixture
    def store(self, moto_endpoint: str) -> Iterator[ItemStore]:
        client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
        table = f"items-{uuid.uuid4().hex[:12]}"
        create_table(client, table)
        store = DynamoItemStore(table, client=client)
        yield store
        store.close()
        client.delete_table(TableName=table)
