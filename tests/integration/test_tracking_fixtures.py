"""Shared set-up for the tracking tests (no tests here): the tracking routes over a real
SQLite file, a fake clock, real derived keys, and a publish that records what it gets."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from lunamail.adapters.itemstore.sqlite import SqliteItemStore
from lunamail.config import Settings
from lunamail.domain.messages import Later, Message
from lunamail.entrypoints.http.routes_tracking import create_tracking_app
from lunamail.lib import tokens
from lunamail.lib.tracklinks import TrackingLinks
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.ports.secrets import DerivedSecrets

BASE = "https://track.example.com"
ACCOUNT = "acct1"
CAMPAIGN = "camp1"
LIST = "list1"
EMAIL = "ann@example.com"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


@dataclass
class Tracking:
    deps: Deps
    clock: FakeClock
    client: TestClient
    published: list[Message] = field(default_factory=list)

    def key(self, purpose: str) -> bytes:
        return self.deps.secrets.key(ACCOUNT, purpose)

    def links(self, max_age: float | None = None) -> TrackingLinks:
        return TrackingLinks(BASE, self.key(tokens.TRACK), ACCOUNT, CAMPAIGN, max_age=max_age)

    def unsubscribe_path(self, list_id: str = LIST, email: str = EMAIL) -> str:
        """What delivery puts in List-Unsubscribe (the path part)."""
        token = tokens.make_token(self.key(tokens.UNSUBSCRIBE), ACCOUNT, "u", CAMPAIGN, list_id, email)
        return f"/u/{token}"

    def view_path(self, email: str = EMAIL, campaign: str = CAMPAIGN) -> str:
        return "/v/" + tokens.make_token(self.key(tokens.VIEW), ACCOUNT, "v", campaign, email)


def path_of(url: str) -> str:
    assert url.startswith(BASE + "/"), url
    return url[len(BASE) :]


def make_tracking(tmp_path: Path, **extra: Any) -> tuple[SqliteItemStore, Tracking]:
    clock = FakeClock()
    store = SqliteItemStore(tmp_path / "lunamail.db", clock=clock)
    deps = Deps(settings=Settings(base_url=BASE, **extra), store=store,
                blobs=cast(Any, None), clock=clock, secrets=DerivedSecrets(b"m" * 32))
    published: list[Message] = []

    def publish(messages: Sequence[Message | Later]) -> None:
        published.extend(m.message if isinstance(m, Later) else m for m in messages)

    client = TestClient(create_tracking_app(deps, publish), raise_server_exceptions=False)
    return store, Tracking(deps, clock, client, published)


@pytest.fixture()
def tr(tmp_path: Path) -> Iterator[Tracking]:
    store, handle = make_tracking(tmp_path)
    with handle.client:
        yield handle
    store.close()
