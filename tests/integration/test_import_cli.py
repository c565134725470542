"""The audience CLI end to end on a data folder in a temp dir (real SQLite, real files)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from lunamail.entrypoints.cli.context import close_apps
from lunamail.entrypoints.cli.main import app

CORPUS = Path(__file__).parents[1] / "data" / "csv"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for var in ("LUNAMAIL_CONFIG", "LUNAMAIL_ACCOUNT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LUNAMAIL_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0  # an uninitialised folder is refused
    yield runner
    close_apps()


def ok(cli: CliRunner, *args: str) -> Any:
    res = cli.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return orjson.loads(res.stdout)


def test_lists_create_and_ls(cli: CliRunner) -> None:
    created = ok(cli, "lists", "create", "News", "--description", "weekly", "--double-opt-in",
                 "--field", "age:number", "--field", "city")  # fmt: skip
    assert (created["name"], created["double_opt_in"]) == ("News", True)
    assert created["fields"] == [{"name": "age", "type": "number"}, {"name": "city", "type": "text"}]
    listed = ok(cli, "lists", "ls")["items"]
    assert [(x["id"], x["name"], x["counts"]["subscribed"]) for x in listed] == [(created["id"], "News", 0)]
    dup = cli.invoke(app, ["lists", "create", "news", "--json"])
    assert dup.exit_code == 1  # the operation failed (a conflict)
    assert orjson.loads(dup.stdout)["error"]["message"] == "a list named 'news' already exists"


def test_import_with_mapping_then_browse_and_unsubscribe(cli: CliRunner, tmp_path: Path) -> None:
    ok(cli, "lists", "create", "news")
    path = tmp_path / "people.csv"
    path.write_text("Who,E-Mail,Town\nAnn,ann@example.com,Paris\nBob,bob@example.com,Rome\nX,bad,Oslo\n", "utf-8")
    summary = ok(cli, "import", str(path), "--list", "news", "--map", "Who=name", "--map", "Town=city")
    assert {k: summary[k] for k in ("imported", "updated", "skipped", "rejected")} == {
        "imported": 2, "updated": 0, "skipped": 0, "rejected": 1
    }  # fmt: skip
    assert summary["error_report"].endswith("errors.csv")
    page = ok(cli, "subscribers", "ls", "--list", "news")
    assert [(s["email"], s["name"], s["fields"]) for s in page["items"]] == [
        ("ann@example.com", "Ann", {"city": "Paris"}), ("bob@example.com", "Bob", {"city": "Rome"})
    ]  # fmt: skip
    assert ok(cli, "subscribers", "unsubscribe", "bob@example.com", "--list", "news")["status"] == "unsubscribed"
    subscribed = ok(cli, "subscribers", "ls", "--list", "news", "--status", "subscribed")
    assert [s["email"] for s in subscribed["items"]] == ["ann@example.com"]
    counts = ok(cli, "lists", "ls")["items"][0]["counts"]
    assert (counts["subscribed"], counts["unsubscribed"]) == (1, 1)


def test_import_whole_file_error_is_one_message(cli: CliRunner) -> None:
    ok(cli, "lists", "create", "news")
    res = cli.invoke(app, ["import", str(CORPUS / "binary.csv"), "--list", "news", "--json"])
    assert res.exit_code == 1
    assert "binary" in orjson.loads(res.stdout)["error"]["message"]


def test_import_shows_a_summary_without_json(cli: CliRunner) -> None:
    ok(cli, "lists", "create", "news")
    res = cli.invoke(app, ["import", str(CORPUS / "invalid_addresses.csv"), "--list", "news"])
    assert res.exit_code == 0, res.output
    assert "Rejected rows are listed in" in res.output


def test_subscribers_add_show_rm_and_suppression(cli: CliRunner) -> None:
    ok(cli, "lists", "create", "news")
    added = ok(cli, "subscribers", "add", "Ann@Example.COM", "--list", "news", "--name", "Ann", "--field", "city=Oslo")
    assert (added["email"], added["fields"]) == ("Ann@example.com", {"city": "Oslo"})
    assert ok(cli, "subscribers", "show", "Ann@example.com", "--list", "news")["name"] == "Ann"
    ok(cli, "subscribers", "rm", "Ann@example.com", "--list", "news")
    missing = cli.invoke(app, ["subscribers", "show", "Ann@example.com", "--list", "news", "--json"])
    assert missing.exit_code == 1  # not found: the operation failed
    assert orjson.loads(missing.stdout)["error"]["code"] == "not_found"  # the code HTTP uses
    ok(cli, "suppression", "add", "spam@example.com", "--reason", "complaint")
    listed = ok(cli, "suppression", "ls")["items"]
    assert [(s["email"], s["reason"]) for s in listed] == [("spam@example.com", "complaint")]
    refused = cli.invoke(app, ["subscribers", "add", "spam@example.com", "--list", "news", "--json"])
    assert refused.exit_code == 1
    assert orjson.loads(refused.stdout)["error"]["code"] == "conflict"
    ok(cli, "suppression", "rm", "spam@example.com")
    assert ok(cli, "suppression", "ls")["items"] == []
