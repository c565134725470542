"""The CLI's conventions, the same for every command: --version, one list shape, stable
error codes (those of the REST API) and exit codes 0 / 1 / 2, a refused unknown account
and a refused uninitialised data folder."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from lunamail import __version__
from lunamail.app.errors import CODES
from lunamail.entrypoints.cli.context import close_apps
from lunamail.entrypoints.cli.main import app, main


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for var in ("LUNAMAIL_CONFIG", "LUNAMAIL_ACCOUNT"):
        monkeypatch.delenv(var, raising=False)
    data = tmp_path / "data"
    monkeypatch.setenv("LUNAMAIL_DATA_DIR", str(data))
    yield data
    close_apps()


def run(*args: str) -> tuple[int, Any]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, orjson.loads(res.stdout) if "--json" in args else res.stdout


def test_version(folder: Path) -> None:
    code, out = run("--version")
    assert (code, out.strip()) == (0, f"lunamail {__version__}")


def test_an_uninitialised_folder_is_refused_and_not_created(folder: Path) -> None:
    for args in (("lists", "ls", "--json"), ("campaigns", "ls", "--json"), ("dlq", "ls", "--json")):
        code, out = run(*args)
        assert code == 1, args
        assert out["error"]["code"] == "not_initialised"
        assert "lunamail init" in out["error"]["message"]
    assert not folder.exists()
    code, out = run("init", "--json")
    assert code == 0 and out["created"] is True and folder.is_dir()
    assert run("lists", "ls", "--json") == (0, {"items": [], "next_cursor": None})


def test_an_unknown_account_is_an_error_naming_the_known_ones(folder: Path) -> None:
    assert run("init", "--json")[0] == 0
    code, out = run("lists", "create", "News", "--account", "acme", "--json")
    assert code == 1
    assert out["error"]["code"] == "not_found"
    assert out["error"]["message"] == "account 'acme' not found; known: default"
    human = CliRunner().invoke(app, ["lists", "ls", "--account", "acme"])
    assert human.exit_code == 1 and "account 'acme' not found; known: default" in human.output
    assert run("lists", "ls", "--json") == (0, {"items": [], "next_cursor": None})  # nothing was created


def test_every_list_has_one_shape(folder: Path) -> None:
    assert run("init", "--json")[0] == 0
    run("lists", "create", "News", "--json")
    run("suppression", "add", "x@example.com", "--json")
    for args in (
        ("lists", "ls"), ("subscribers", "ls", "--list", "News"), ("suppression", "ls"),
        ("campaigns", "ls"), ("accounts", "ls"), ("keys", "ls"), ("dlq", "ls"),
    ):  # fmt: skip
        code, out = run(*args, "--json")
        assert code == 0, args
        assert {"items", "next_cursor"} <= set(out), args
        assert isinstance(out["items"], list), args


def test_json_instants_are_rfc3339_with_an_offset(folder: Path) -> None:
    assert run("init", "--json")[0] == 0
    code, made = run("lists", "create", "News", "--json")
    assert code == 0 and isinstance(made["created_at"], str)
    assert datetime.fromisoformat(made["created_at"]).utcoffset() is not None
    code, keys = run("keys", "ls", "--json")
    assert all(datetime.fromisoformat(k["created_at"]).tzinfo is not None for k in keys["items"])


def test_failures_carry_the_api_codes_and_exit_1(folder: Path) -> None:
    assert run("init", "--json")[0] == 0
    code, out = run("campaigns", "show", "nope", "--json")
    assert (code, out["error"]["code"]) == (1, "not_found")
    run("lists", "create", "News", "--json")
    code, out = run("lists", "create", "News", "--json")
    assert (code, out["error"]["code"]) == (1, "conflict")
    for doc in (out,):
        assert doc["error"]["code"] in CODES


def test_usage_errors_exit_2_and_print_json_when_asked(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["lists", "ls", "--no-such-option", "--json"])
    assert exited.value.code == 2
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["error"]["code"] == "usage_error" and "--no-such-option" in doc["error"]["message"]
    with pytest.raises(SystemExit) as exited:
        main(["lists", "ls", "--no-such-option"])
    assert exited.value.code == 2
    assert "No such option" in capsys.readouterr().err
