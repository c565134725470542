"""Shared set-up for the campaign and report HTTP tests (no tests here): a real system on
SQLite files whose mailer is a ``MemoryMailer``, wired by the real routing table, two accounts
with a key each, and helpers to build an audience and a sendable draft over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient

from lunamail.adapters.mailer.memory import MemoryMailer
from lunamail.domain.messages import Later, Message
from lunamail.entrypoints.http.app import create_app
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.services.accounts import api as accounts
from tests.support.domains import add_sending_domains

M = TypeVar("M", bound=Message)

HTML = (
    "<h1>Hello {{ subscriber.name }}</h1><p>News for {{ subscriber.email }}.</p>"
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)

@dataclass
class CampaignApi:
    system: System
    client: TestClient
    mailer: MemoryMailer
    key_a: str
    key_b: str
    published: list[Message | Later] = field(default_factory=list)

    @property
    def a(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key_a}"}

    @property
    def b(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key_b}"}

    def of_type(self, cls: type[M]) -> list[M]:
        """Published messages of one type (a ``Later`` counts as its message)."""
        out = [m.message if isinstance(m, Later) else m for m in self.published]
        return [m for m in out if isinstance(m, cls)]

    def audience(self, headers: dict[str, str], name: str, emails: list[str]) -> str:
        """A list with these subscribers; returns its id."""
        created = self.client.post("/v1/lists", headers=headers, json={"name": name})
        assert created.status_code == 201, created.text
        list_id = str(created.json()["id"])
        for n, email in enumerate(emails):
            resp = self.client.post(
                f"/v1/lists/{list_id}/subscribers",
                headers=headers,
                json={"email": email, "name": f"Reader {n}"},
            )
            assert resp.status_code == 201, resp.text
        return list_id

    def draft(self, headers: dict[str, str], lists: list[str], **overrides: Any) -> dict[str, Any]:
        """A draft that passes the pre-send checks (unless ``overrides`` break it)."""
        body: dict[str, Any] = {
            "name": "Spring news",
            "subject": "Hello {{ subscriber.name }}",
            "from_name": "Lunamail Tests",
            "from_email": "news@example.com",
            "reply_to": "",
            "html": HTML,
            "lists": lists,
            **overrides,
        }
        resp = self.client.post("/v1/campaigns", headers=headers, json=body)
        assert resp.status_code == 201, resp.text
        doc: dict[str, Any] = resp.json()
        return doc

    def status(self, headers: dict[str, str], campaign: str) -> str:
        resp = self.client.get(f"/v1/campaigns/{campaign}", headers=headers)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["status"])


def make_campaign_system(tmp_path: Path, mailer: MemoryMailer) -> System:
    system = bootstrap_in(
        tmp_path / "data",
        mailer=mailer,
        settings_overrides={"base_url": "https://mail.example.com"},
    )
    accounts.create_account(system.deps, "Alpha", account_id="alpha")
    accounts.create_account(system.deps, "Beta", account_id="beta")
    add_sending_domains(system, ("alpha", "beta"), ("example.com",))  # the drafts' From
    return system


def make_campaign_api(tmp_path: Path) -> CampaignApi:
    mailer = MemoryMailer()
    system = make_campaign_system(tmp_path, mailer)
    key_a = accounts.create_api_key(system.deps, "alpha", "tests").secret
    key_b = accounts.create_api_key(system.deps, "beta", "tests").secret
    published: list[Message | Later] = []

    def publish(messages: Any) -> list[str]:
        # Record what the API hands to the bus (Later kept whole: its delay matters), then
        # hand it over for real.
        published.extend(messages)
        return system.bus.publish(messages)

    client = TestClient(create_app(system, publish=publish), raise_server_exceptions=False)
    return CampaignApi(system, client, mailer, key_a, key_b, published)


@pytest.fixture()
def capi(tmp_path: Path) -> Iterator[CampaignApi]:
    handle = make_campaign_api(tmp_path)
    with handle.client:
        yield handle
    handle.system.close()
