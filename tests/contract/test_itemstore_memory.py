"""The ItemStore contract on MemoryItemStore."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.ports.itemstore import ItemStore

from .itemstore_contract import ItemStoreContract


class TestMemoryItemStore(ItemStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[ItemStore]:
        store = MemoryItemStore()
        yield store
        store.close()
