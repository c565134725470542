"""Shared set-up for the HTTP tests (no tests here): a real system on SQLite files,
two accounts with a key each, and the in-process ASGI client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from lunamail.domain.messages import Later, Message
from lunamail.entrypoints.http.app import create_app
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.services.accounts import api as accounts
from tests.support.domains import add_sending_domains

#: The domains the HTTP tests' drafts send From (each account has them).
SENDING_DOMAINS = ("example.com", "example.org")


@dataclass
class Api:
    system: System
    client: TestClient
    key_a: str
    key_b: str
    published: list[Message] = field(default_factory=list)

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @property
    def a(self) -> dict[str, str]:
        return self.auth(self.key_a)

    @property
    def b(self) -> dict[str, str]:
        return self.auth(self.key_b)


def make_api(
    tmp_path: Path, extra_routers: tuple[APIRouter, ...] = (), settings: dict[str, Any] | None = None
) -> tuple[System, Api]:
    system = bootstrap_in(tmp_path / "data", settings_overrides=settings)
    accounts.create_account(system.deps, "Alpha", account_id="alpha")
    accounts.create_account(system.deps, "Beta", account_id="beta")
    key_a = accounts.create_api_key(system.deps, "alpha", "tests").secret
    key_b = accounts.create_api_key(system.deps, "beta", "tests").secret
    add_sending_domains(system, ("alpha", "beta"), SENDING_DOMAINS)  # the From domains of the drafts
    published: list[Message] = []

    def publish(messages: Any) -> list[str]:
        # Record what the API hands to the bus, then hand it over for real.
        published.extend(m.message if isinstance(m, Later) else m for m in messages)
        return system.bus.publish(messages)

    app = create_app(system, publish=publish, extra_routers=extra_routers)
    client = TestClient(app, raise_server_exceptions=False)
    return system, Api(system, client, key_a, key_b, published)


@pytest.fixture()
def api(tmp_path: Path) -> Iterator[Api]:
    system, handle = make_api(tmp_path)
    with handle.client:
        yield handle
    system.close()


def assert_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    """The one error shape, with the expected status and code; returns the error object."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"code", "message", "details"}
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["details"], dict)
    return dict(err)
