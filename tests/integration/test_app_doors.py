"""The same use cases run from the CLI and from the REST API emit the same messages and
leave the same items: create a list, import a CSV into it, create a campaign and send it.

Both doors call ``lunamail.app``; this test is what keeps a door from growing its own
orchestration again.  Random ids and instants differ between the two runs, so both
are normalised before comparing."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lunamail.app.base import Env
from lunamail.domain.messages import Later, Message
from lunamail.entrypoints.cli import context as cli_context
from lunamail.entrypoints.cli.context import close_apps, get_app
from lunamail.entrypoints.cli.main import app as cli
from lunamail.entrypoints.http.app import create_app
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.services.accounts import api as accounts

ACCOUNT = "alpha"
CSV = "email,name,city\nann@example.com,Ann,Oslo\nbob@example.com,Bob,Rome\nnot-an-address,X,Y\n"
HTML = '<p>Hi {{ subscriber.name }}</p><a href="{{ unsubscribe_url }}">unsubscribe</a>'
_ID = re.compile(r"[0-9a-f]{16,}|[0-9a-f]{11}[0-9a-f]{8}")
_TIME = re.compile(r"\d{9,}\.\d+")


def _norm(value: Any) -> Any:
    """Ids and instants out; everything else kept."""
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in sorted(value.items()) if not isinstance(v, float)}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, str):
        return _TIME.sub("<t>", _ID.sub("<id>", value))
    return value


def _same_keys(item: dict[str, Any]) -> dict[str, Any]:
    """A sending domain's keys are new random ones in each folder: their algorithms count."""
    if str(item.get("sk", "")).startswith("DOM#"):
        return {**item, "keys": [k["algorithm"] for k in item["keys"]]}
    return item


def _messages(recorded: Sequence[Message | Later]) -> list[Any]:
    out = []
    for m in recorded:
        msg = m.message if isinstance(m, Later) else m
        out.append((msg.NAME, _norm(msg.to_dict()["body"]), isinstance(m, Later)))
    return out


def _items(system: System) -> list[Any]:
    """Every item of the account's partitions (the installation's keys and index aside)."""
    db = sqlite3.connect(system.settings.db_path)
    try:
        pks = [r[0] for r in db.execute("SELECT pk FROM partitions WHERE pk LIKE ?", (f"A#{ACCOUNT}%",))]
    finally:
        db.close()
    found = []
    for pk in pks:
        cursor = None
        while True:
            page = system.store.query(pk, limit=1000, cursor=cursor)
            found += [_norm(_same_keys(dict(i))) for i in page.items]
            cursor = page.cursor
            if cursor is None:
                break
    return sorted(found, key=lambda i: orjson.dumps(i, option=orjson.OPT_SORT_KEYS))


def _prepare(folder: Path) -> str:
    with bootstrap_in(folder) as system:
        accounts.create_account(system.deps, "Alpha", account_id=ACCOUNT)
        return accounts.create_api_key(system.deps, ACCOUNT, "tests").secret


def _by_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[Any]]:
    folder = tmp_path / "cli"
    _prepare(folder)
    monkeypatch.setenv("LUNAMAIL_DATA_DIR", str(folder))
    monkeypatch.setenv("LUNAMAIL_ACCOUNT", ACCOUNT)
    recorded: list[Message | Later] = []
    real = cli_context.env_of

    def recording(system: System) -> Env:
        env = real(system)

        def publish(messages: Sequence[Message | Later]) -> object:
            recorded.extend(messages)
            return env.publish(messages)

        return Env(env.deps, publish, env.queue)

    monkeypatch.setattr(cli_context, "env_of", recording)
    (tmp_path / "people.csv").write_text(CSV)
    (tmp_path / "mail.html").write_text(HTML)
    runner = CliRunner()

    def ok(*args: str) -> Any:
        res = runner.invoke(cli, [*args, "--json"])
        assert res.exit_code == 0, res.output
        return orjson.loads(res.stdout)

    try:
        ok("domains", "add", "example.com")
        ok("lists", "create", "News", "--field", "city")
        ok("import", str(tmp_path / "people.csv"), "--list", "News")
        system = get_app()
        assert system.runtime().run_until_idle(timeout=60)
        camp = ok("campaigns", "create", "--name", "June", "--list", "News", "--subject", "Hi",
                  "--from", "News <news@example.com>", "--html", str(tmp_path / "mail.html"))
        ok("campaigns", "send", camp["id"])
        return _messages(recorded), _items(system)
    finally:
        close_apps()


def _by_http(tmp_path: Path) -> tuple[list[Any], list[Any]]:
    folder = tmp_path / "http"
    key = _prepare(folder)
    recorded: list[Message | Later] = []
    with bootstrap_in(folder) as system:

        def publish(messages: Sequence[Message | Later]) -> object:
            recorded.extend(messages)
            return system.bus.publish(messages)

        auth = {"Authorization": f"Bearer {key}"}
        with TestClient(create_app(system, publish=publish)) as client:

            def ok(method: str, path: str, **kw: Any) -> Any:
                resp = client.request(method, path, headers=auth, **kw)
                assert resp.status_code < 300, resp.text
                return resp.json() if resp.content else None

            ok("POST", "/v1/domains", json={"domain": "example.com"})
            lst = ok("POST", "/v1/lists", json={"name": "News", "fields": [{"name": "city"}]})
            declared = ok("POST", "/v1/imports", json={"list": "News"})
            upload = declared["upload"]
            put = client.put(upload["url"].replace(system.settings.base_url, ""), content=CSV.encode(),
                             headers={"Content-Type": "text/csv"})
            assert put.status_code < 300, put.text
            ok("POST", f"/v1/imports/{declared['id']}/start")
            assert system.runtime().run_until_idle(timeout=60)
            camp = ok("POST", "/v1/campaigns", json={
                "name": "June", "lists": [lst["name"]], "subject": "Hi", "from_name": "News",
                "from_email": "news@example.com", "html": HTML})
            ok("POST", f"/v1/campaigns/{camp['id']}/send")
        return _messages(recorded), _items(system)


def test_cli_and_http_emit_the_same_messages_and_leave_the_same_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("LUNAMAIL_CONFIG", "LUNAMAIL_ACCOUNT"):
        monkeypatch.delenv(var, raising=False)
    cli_messages, cli_items = _by_cli(tmp_path, monkeypatch)
    http_messages, http_items = _by_http(tmp_path)
    names = [m[0] for m in cli_messages]
    assert names == ["audience.ListCreated", "audience.ImportChunk", "campaigns.CampaignSendStarted"], names
    assert cli_messages == http_messages
    assert any(i.get("email") == "ann@example.com" for i in cli_items)  # the import ran
    assert cli_items == http_items
