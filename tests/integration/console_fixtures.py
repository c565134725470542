"""Shared set-up for the console tests (no tests here): a real system on SQLite files,
two accounts with users of every role, the in-process ASGI client, and sign-in helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lunamail.domain.messages import Later, Message
from lunamail.entrypoints.http.app import create_app
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.services.accounts import api as accounts
from lunamail.services.accounts import users

PASSWORD = "a long enough password"
ROLES = ("owner", "admin", "sender", "editor", "viewer")


@dataclass
class Console:
    system: System
    app: Any
    published: list[Message] = field(default_factory=list)

    def client(self, base_url: str = "http://testserver") -> TestClient:
        return TestClient(self.app, base_url=base_url, raise_server_exceptions=False, follow_redirects=False)

    def email(self, role: str, account: str = "alpha") -> str:
        return f"{role}@{account}.example.com"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    assert page.status_code == 200, page.text
    return client.post("/login", data={"email": email, "password": password, "csrf": csrf_of(page.text)})


def signed_in(console: Console, role: str, account: str = "alpha") -> tuple[TestClient, str]:
    """A client signed in as the role's user, and the session's CSRF token."""
    client = console.client()
    resp = sign_in(client, console.email(role, account))
    assert resp.status_code == 303, resp.text
    return client, csrf_of(client.get("/").text)


def make_console(tmp_path: Path, settings: dict[str, Any] | None = None) -> Console:
    system = bootstrap_in(tmp_path / "data", settings_overrides=settings or {})
    for account in ("alpha", "beta"):
        accounts.create_account(system.deps, account.title(), account_id=account)
        for role in ROLES:
            email = f"{role}@{account}.example.com"
            users.add_user(system.deps, account, email, role)
            users.set_password(system.deps, account, email, PASSWORD)
    published: list[Message] = []

    def publish(messages: Any) -> list[str]:
        published.extend(m.message if isinstance(m, Later) else m for m in messages)
        return system.bus.publish(messages)

    return Console(system, create_app(system, publish=publish), published)


@pytest.fixture()
def console(tmp_path: Path) -> Iterator[Console]:
    handle = make_console(tmp_path)
    yield handle
    handle.system.close()
