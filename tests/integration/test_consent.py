"""Consent that sticks: "unsubscribe from all lists" is an account-level opt-out that a later
import into another list honours (counted and listed as opted out) and that ``subscribers add``
and the API refuse (``opted_out``) unless told ``--resubscribe`` with a reason, which the
history keeps -- as it keeps every consent change with its door and detail.

A real data folder (SQLite), the CLI through Typer, the ASGI app in process, the real
unsubscribe link."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lunamail.entrypoints.cli.context import close_apps
from lunamail.entrypoints.cli.main import app as cli_app
from lunamail.entrypoints.http.app import create_app
from lunamail.lib import tokens
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts
from lunamail.services.audience import api as audience

from .console_fixtures import Console, console, signed_in
from .test_http_fixtures import assert_error
from .test_import_cli import cli, ok

__all__ = ["cli", "console"]

ACCOUNT = "default"


def failed(cli: CliRunner, *args: str) -> dict[str, Any]:
    res = cli.invoke(cli_app, [*args, "--json"])
    assert res.exit_code == 1, res.output
    err: dict[str, Any] = orjson.loads(res.stdout)["error"]
    return err


def _unsubscribe_from_all_lists(tmp_path: Path, list_id: str, email: str) -> str:
    """What a person does on the page of an unsubscribe link: choose "all lists", confirm.
    Returns an API key for the REST calls that follow."""
    close_apps()
    with bootstrap_in(tmp_path / "data") as system:
        key = system.deps.secrets.key(ACCOUNT, tokens.UNSUBSCRIBE)
        token = tokens.make_token(key, ACCOUNT, "u", "spring", list_id, email)
        with TestClient(create_app(system)) as client:
            resp = client.post(f"/u/{token}", data={"action": "confirm", "scope": "all"})
            assert resp.status_code == 200 and "You are unsubscribed" in resp.text
        system.runtime().run_until_idle(timeout=60)
        return accounts.create_api_key(system.deps, ACCOUNT, "tests").secret


def _csv(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return str(path)


def test_an_opted_out_address_is_skipped_by_a_later_import_into_another_list(
    cli: CliRunner, tmp_path: Path
) -> None:
    news = ok(cli, "lists", "create", "News")["id"]
    ok(cli, "lists", "create", "Offers")
    first = ok(cli, "import", _csv(tmp_path, "a.csv", "email,name\nann@example.com,Ann\nbob@example.com,Bob\n"),
               "--list", "News")  # fmt: skip
    assert first["imported"] == 2
    _unsubscribe_from_all_lists(tmp_path, news, "ann@example.com")
    assert ok(cli, "subscribers", "show", "ann@example.com", "--list", "News")["status"] == "unsubscribed"

    rows = "email,name\nANN@example.com,Ann\nbob@example.com,Bob\ncid@example.com,Cid\nnot-an-address,X\n"
    later = ok(cli, "import", _csv(tmp_path, "b.csv", rows), "--list", "Offers")
    assert {k: later[k] for k in ("imported", "opted_out", "skipped", "rejected", "suppressed")} == {
        "imported": 2, "opted_out": 1, "skipped": 1, "rejected": 1, "suppressed": 0}
    offers = ok(cli, "subscribers", "ls", "--list", "Offers")["items"]
    assert sorted(s["email"] for s in offers) == ["bob@example.com", "cid@example.com"]
    close_apps()
    with bootstrap_in(tmp_path / "data") as system:
        lines = system.deps.blobs.get(later["error_report"]).decode("utf-8").splitlines()
    assert lines[0] == "line,column,value,reason"
    assert [ln.split(",")[:3] for ln in lines[1:]] == [["2", "email", "ANN@example.com"], ["5", "email", "not-an-address"]]
    assert "opted out" in lines[1]


def test_subscribers_add_refuses_an_opted_out_address_without_resubscribe(cli: CliRunner, tmp_path: Path) -> None:
    news = ok(cli, "lists", "create", "News")["id"]
    ok(cli, "lists", "create", "Offers")
    ok(cli, "subscribers", "add", "ann@example.com", "--list", "News")
    api_key = _unsubscribe_from_all_lists(tmp_path, news, "ann@example.com")

    for lst in ("Offers", "News"):  # another list, and the one the link came from
        err = failed(cli, "subscribers", "add", "Ann@Example.com", "--list", lst)
        assert err["code"] == "opted_out" and err["details"]["scope"] == "all"
    err = failed(cli, "subscribers", "add", "ann@example.com", "--list", "Offers", "--resubscribe")
    assert err["code"] == "invalid_input" and "reason" in err["details"]["fields"]
    with bootstrap_in(tmp_path / "data") as system, TestClient(create_app(system)) as client:
        resp = client.post("/v1/lists/Offers/subscribers", json={"email": "ann@example.com"},
                           headers={"Authorization": f"Bearer {api_key}"})  # fmt: skip
        assert_error(resp, 409, "opted_out")
    close_apps()

    back = ok(cli, "subscribers", "add", "ann@example.com", "--list", "Offers", "--resubscribe",
              "--reason", "asked at the shop counter")  # fmt: skip
    assert back["status"] == "subscribed"
    history = ok(cli, "subscribers", "history", "ANN@EXAMPLE.COM")
    assert history["opted_out"] is None  # the resubscribe lifted the account-level opt-out
    events = [(e["event"], e["list_name"], e["door"]) for e in history["events"]]
    assert events == [
        ("subscribed", "News", "cli"),
        ("opted_out", "", "link"),
        ("unsubscribed", "News", "link"),
        ("resubscribed", "Offers", "cli"),
    ]
    assert history["events"][1]["detail"] == "campaign spring"
    assert history["events"][3]["detail"] == "asked at the shop counter"
    # unsubscribed from one list only: that list refuses too, until resubscribed
    ok(cli, "subscribers", "unsubscribe", "ann@example.com", "--list", "Offers")
    err = failed(cli, "subscribers", "add", "ann@example.com", "--list", "Offers")
    assert err["code"] == "opted_out" and err["details"]["scope"] == "list"


def test_history_shows_import_suppression_and_bounce_doors(cli: CliRunner, tmp_path: Path) -> None:
    ok(cli, "lists", "create", "News")
    job = ok(cli, "import", _csv(tmp_path, "a.csv", "email\nzoe@example.com\n"), "--list", "News")
    ok(cli, "suppression", "add", "ZOE@example.com", "--reason", "asked by phone")
    ok(cli, "suppression", "rm", "zoe@example.com")
    history = ok(cli, "subscribers", "history", "Zoe@Example.com")
    assert history["email"] == "zoe@example.com" and history["mailbox"] == "zoe@example.com"
    assert [(x["list_name"], x["status"]) for x in history["lists"]] == [("News", "subscribed")]
    assert [(e["event"], e["door"], e["detail"]) for e in history["events"]] == [
        ("imported", "import", job["import_id"]),
        ("suppressed", "cli", "asked by phone"),
        ("unsuppressed", "cli", ""),
    ]
    res = cli.invoke(cli_app, ["subscribers", "history", "zoe@example.com"])
    assert res.exit_code == 0 and "imported" in res.output and "asked by phone" in res.output


def test_the_console_refuses_an_unsubscribed_address_and_shows_the_resubscribe(console: Console) -> None:
    deps = console.system.deps
    lst = audience.create_list(deps, "alpha", "News")["id"]
    audience.subscribe(deps, "alpha", lst, "Ann@Example.com", source="console")
    audience.unsubscribe(deps, "alpha", lst, "ann@example.com", source="console")
    client, token = signed_in(console, "editor")
    refused = client.post(f"/lists/{lst}/subscribers", data={"csrf": token, "email": "ANN@example.com"})
    assert refused.status_code == 409 and "unsubscribed from this list" in refused.text
    no_reason = client.post(f"/lists/{lst}/subscribers",
                            data={"csrf": token, "email": "ann@example.com", "resubscribe": "yes"})  # fmt: skip
    assert no_reason.status_code == 422
    added = client.post(f"/lists/{lst}/subscribers", data={"csrf": token, "email": "ann@example.com",
                                                           "resubscribe": "yes", "reason": "wrote to us"})
    assert added.status_code == 303
    page = client.get(f"/lists/{lst}/subscribers/ann@EXAMPLE.com")
    assert page.status_code == 200 and "Ann@example.com" in page.text
    table = page.text.split('id="history"', 1)[1].split("</table>", 1)[0]
    rows = table.split("<tr>")[2:]
    assert [next(e for e in ("resubscribed", "unsubscribed", "subscribed") if f"<td>{e}</td>" in r)
            for r in rows] == ["subscribed", "unsubscribed", "resubscribed"]
    assert "wrote to us" in rows[2] and "<td>console</td>" in rows[2]
