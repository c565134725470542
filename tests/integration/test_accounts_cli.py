"""``lunamail init``, ``accounts`` and ``keys`` through the real CLI on a real data folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lunamail.entrypoints.cli.context import close_apps, get_app
from lunamail.entrypoints.cli.main import app
from lunamail.services.accounts import api as accounts


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for var in ("LUNAMAIL_ACCOUNT", "LUNAMAIL_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LUNAMAIL_DATA_DIR", str(tmp_path / "data"))
    yield CliRunner()
    close_apps()


def run_json(cli: CliRunner, *args: str) -> Any:
    result = cli.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_init_is_idempotent_and_prints_the_key_once(cli: CliRunner, tmp_path: Path) -> None:
    first = run_json(cli, "init")
    assert first["account"] == "default" and first["created"] is True
    assert first["api_key"].startswith("lm_")
    assert Path(first["data_dir"]) == (tmp_path / "data").resolve()
    deps = get_app().deps
    assert accounts.authenticate(deps, first["api_key"]) == "default"

    again = run_json(cli, "init")
    assert again["created"] is False and again["api_key"] is None
    human = cli.invoke(app, ["init"])
    assert human.exit_code == 0 and "already exists" in human.stdout and "lm_" not in human.stdout

    extra = run_json(cli, "init", "--new-key")
    assert extra["api_key"] and extra["api_key"] != first["api_key"]
    assert accounts.authenticate(deps, extra["api_key"]) == "default"


def test_keys_create_ls_revoke(cli: CliRunner) -> None:
    run_json(cli, "init")
    made = run_json(cli, "keys", "create", "--label", "deploy")
    assert made["label"] == "deploy" and made["api_key"].startswith(made["prefix"])
    listed = run_json(cli, "keys", "ls")
    assert made["prefix"] in [k["prefix"] for k in listed["items"]]
    assert made["api_key"] not in json.dumps(listed)
    revoked = run_json(cli, "keys", "revoke", made["prefix"])
    assert revoked["active"] is False
    assert accounts.authenticate(get_app().deps, made["api_key"]) is None
    assert made["prefix"] not in [k["prefix"] for k in run_json(cli, "keys", "ls")["items"]]
    assert made["prefix"] in [k["prefix"] for k in run_json(cli, "keys", "ls", "--all")["items"]]
    missing = cli.invoke(app, ["keys", "revoke", "lm_nothere", "--json"])
    assert missing.exit_code != 0 and json.loads(missing.stdout)["error"]["message"]


def test_accounts_and_the_current_account(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    run_json(cli, "init")
    made = run_json(cli, "accounts", "create", "Shop", "--id", "shop")
    assert made["id"] == "shop" and made["sending"] == "active"
    ids = [a["id"] for a in run_json(cli, "accounts", "ls")["items"]]
    assert ids == ["default", "shop"]
    dup = cli.invoke(app, ["accounts", "create", "Shop", "--id", "shop"])
    assert dup.exit_code != 0

    via_option = run_json(cli, "keys", "create", "--account", "shop")
    assert accounts.authenticate(get_app().deps, via_option["api_key"]) == "shop"
    monkeypatch.setenv("LUNAMAIL_ACCOUNT", "shop")
    via_env = run_json(cli, "keys", "ls")
    assert via_env["account"] == "shop" and len(via_env["items"]) == 1


def test_unlock(cli: CliRunner) -> None:
    run_json(cli, "init")
    deps = get_app().deps
    accounts.lock_sending(deps, "default", "complaints above 0.1%", {"complaint_rate": 0.004})
    locked = run_json(cli, "accounts", "ls")["items"][0]
    assert locked["sending"] == "locked" and locked["sending_reason"].startswith("complaints")
    out = run_json(cli, "accounts", "unlock", "default")
    assert out["sending"] == "active" and out["changed"] is True
    assert run_json(cli, "accounts", "unlock", "default")["changed"] is False
    assert cli.invoke(app, ["accounts", "unlock", "ghost"]).exit_code != 0


def test_init_creates_the_owner_with_a_link_and_users_commands_manage_roles(cli: CliRunner) -> None:
    from lunamail.app import signin

    first = run_json(cli, "init", "--owner", "Boss@Example.com")
    assert first["owner"] == "Boss@Example.com" and "/login/link/" in first["set_password_link"]
    assert run_json(cli, "init")["set_password_link"] is None  # the owner exists: no new link
    deps = get_app().deps
    token = first["set_password_link"].rsplit("/", 1)[1]
    assert signin.set_password_with_link(deps, token, "a long password", client="t").user.role == "owner"

    added = run_json(cli, "users", "add", "ed@example.com", "--role", "editor", "--name", "Ed")
    assert added["role"] == "editor" and added["set_password_link"]
    assert run_json(cli, "users", "role", "ed@example.com", "sender")["role"] == "sender"
    listed = run_json(cli, "users", "ls")
    assert {u["email"]: u["role"] for u in listed["items"]} == {"boss@example.com": "owner",
                                                                "ed@example.com": "sender"}
    assert run_json(cli, "users", "link", "ed@example.com")["set_password_link"] != added["set_password_link"]
    bad = cli.invoke(app, ["users", "role", "ed@example.com", "root", "--json"])
    assert bad.exit_code == 1 and "unknown role" in bad.stdout
    last = cli.invoke(app, ["users", "rm", "boss@example.com", "--json"])
    assert last.exit_code == 1 and "last owner" in last.stdout
    assert run_json(cli, "users", "rm", "ed@example.com")["removed"] is True
    key = run_json(cli, "keys", "create", "--role", "viewer")
    assert key["role"] == "viewer" and accounts.authenticate_key(deps, key["api_key"]) == ("default", "viewer")
