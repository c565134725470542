"""One identity per mailbox: ``Jane@Example.com`` and ``jane@example.com`` are one subscriber,
one suppression, one recipient, found by either spelling -- across import, ``subscribers add``,
suppression, the API's lookup, unsubscribe links (page and one-click) and sending; and the
``migrate`` command merges the case duplicates a data folder written before the rule holds.

Real SQLite data folders, the real runtime, the ASGI app in process, the CLI through Typer."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lunamail.adapters.mailer.memory import MemoryMailer
from lunamail.app import audience as app_audience
from lunamail.app.base import Actor, Env
from lunamail.domain import audience as dom
from lunamail.entrypoints.cli.context import close_apps
from lunamail.entrypoints.cli.main import app as cli_app
from lunamail.lib import tokens
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from lunamail.services.reports import api as reports

from .test_http_fixtures import Api, assert_error, make_api
from .test_import_cli import cli, ok

__all__ = ["cli"]

ACCOUNT = "alpha"
ACTOR = Actor(ACCOUNT)
HTML = '<p>Hi {{ subscriber.name }}</p><a href="{{ unsubscribe_url }}">unsubscribe</a>'


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    system, handle = make_api(tmp_path)
    with handle.client:
        yield handle
    system.close()


def _env(system: System) -> Env:
    return Env(system.deps, system.bus.publish, system.queue)


def _import(system: System, list_id: str, text: str) -> dict[str, Any]:
    env = _env(system)
    job = app_audience.import_file(env, ACTOR, list_id, io.BytesIO(text.encode()))
    assert system.run_until(lambda: app_audience.get_import(env, ACTOR, job["id"])["status"] != "running",
                            timeout=60)  # fmt: skip
    return app_audience.get_import(env, ACTOR, job["id"])


def _emails(system: System, list_id: str) -> list[str]:
    rows, _ = audience.list_subscribers(system.deps, ACCOUNT, list_id, limit=1000)
    return [r["email"] for r in rows]


def test_case_variants_in_one_import_are_one_subscriber_spelled_as_first_written(api: Api) -> None:
    system = api.system
    lst = audience.create_list(system.deps, ACCOUNT, "News")["id"]
    job = _import(system, lst, "email,name\nDave@Example.com,Dave\ndave@example.com,D2\nDAVE@EXAMPLE.COM,D3\n"
                               "ann@example.com,Ann\n")  # fmt: skip
    assert (job["imported"], job["duplicates"], job["skipped"]) == (2, 2, 2)
    assert sorted(_emails(system, lst)) == ["Dave@example.com", "ann@example.com"]
    # a later import and `subscribers add` in other cases update the one subscriber
    again = _import(system, lst, "email,name,city\ndave@EXAMPLE.com,,Oslo\n")
    assert (again["imported"], again["updated"]) == (0, 1)
    sub = audience.subscribe(system.deps, ACCOUNT, lst, "DAVE@example.COM", name="Dave D")
    assert (sub["email"], sub["name"], sub["fields"]) == ("Dave@example.com", "Dave D", {"city": "Oslo"})
    assert audience.get_list(system.deps, ACCOUNT, lst)["counts"]["subscribed"] == 2


def test_suppressing_one_spelling_suppresses_every_spelling(api: Api) -> None:
    system = api.system
    lst = audience.create_list(system.deps, ACCOUNT, "News")["id"]
    resp = api.client.post("/v1/suppressions", json={"email": "EVE@example.com"}, headers=api.a)
    assert resp.status_code == 201 and resp.json()["email"] == "EVE@example.com"
    assert audience.is_suppressed(system.deps, ACCOUNT, "eve@example.com")
    found = api.client.get("/v1/suppressions", params={"prefix": "eve@"}, headers=api.a).json()["items"]
    assert [s["email"] for s in found] == ["EVE@example.com"]
    again = api.client.post("/v1/suppressions", json={"email": "Eve@Example.COM"}, headers=api.a)
    assert again.json()["email"] == "EVE@example.com"  # idempotent: the same suppression
    job = _import(system, lst, "email\neve@example.com\nEve@EXAMPLE.com\nann@example.com\n")
    assert (job["imported"], job["suppressed"], job["duplicates"]) == (1, 1, 1)
    assert_error(api.client.post(f"/v1/lists/{lst}/subscribers", json={"email": "eve@EXAMPLE.com"},
                                 headers=api.a), 409, "conflict")  # fmt: skip
    assert api.client.delete("/v1/suppressions/eve@example.com", headers=api.a).status_code == 204
    assert not audience.is_suppressed(system.deps, ACCOUNT, "EVE@example.com")


def test_api_lookup_by_address_ignores_letter_case(api: Api) -> None:
    system = api.system
    lst = audience.create_list(system.deps, ACCOUNT, "News")["id"]
    _import(system, lst, "email\nu1@example.org\nU2@Example.org\n")
    for spelling, shown in (("U1@EXAMPLE.ORG", "u1@example.org"), ("u2@example.org", "U2@example.org")):
        resp = api.client.get(f"/v1/lists/{lst}/subscribers/{spelling}", headers=api.a)
        assert resp.status_code == 200, resp.text
        assert resp.json()["email"] == shown
    found = api.client.get(f"/v1/lists/{lst}/subscribers", params={"prefix": "U"}, headers=api.a).json()
    assert [s["email"] for s in found["items"]] == ["u1@example.org", "U2@example.org"]
    patched = api.client.patch(f"/v1/lists/{lst}/subscribers/U1@Example.Org", json={"name": "One"},
                               headers=api.a)  # fmt: skip
    assert patched.json()["name"] == "One"


@pytest.mark.parametrize("how", ["one-click", "page"])
def test_unsubscribe_links_reach_the_subscriber_in_any_case(api: Api, how: str) -> None:
    system = api.system
    lst = audience.create_list(system.deps, ACCOUNT, "News")["id"]
    audience.subscribe(system.deps, ACCOUNT, lst, "Jane@Example.com")
    key = system.deps.secrets.key(ACCOUNT, tokens.UNSUBSCRIBE)
    token = tokens.make_token(key, ACCOUNT, "u", "camp1", lst, "jane@EXAMPLE.COM")
    data = {"List-Unsubscribe": "One-Click"} if how == "one-click" else {"action": "confirm", "scope": "list"}
    assert api.client.post(f"/u/{token}", data=data).status_code == 200

    def out() -> bool:
        return str(audience.get_subscriber(system.deps, ACCOUNT, lst, "JANE@example.com")["status"]) == "unsubscribed"

    assert system.run_until(out, timeout=60)
    assert audience.get_list(system.deps, ACCOUNT, lst)["counts"] == {
        **{s: 0 for s in dom.STATUSES}, "unsubscribed": 1}
    resp = api.client.get("/v1/subscribers/JANE@example.COM/history", headers=api.a)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert (doc["email"], doc["mailbox"]) == ("Jane@example.com", "jane@example.com")
    assert [(x["email"], x["status"]) for x in doc["lists"]] == [("Jane@example.com", "unsubscribed")]
    door = "one-click" if how == "one-click" else "link"
    assert [(e["event"], e["door"], e["detail"]) for e in doc["events"]] == [
        ("subscribed", "api", ""), ("unsubscribed", door, "campaign camp1")]
    assert_error(api.client.get("/v1/subscribers/nobody@example.com/history", headers=api.a), 404, "not_found")
    assert_error(api.client.get("/v1/subscribers/jane@example.com/history", headers=api.b), 404, "not_found")


def test_case_variants_on_two_lists_get_one_message(tmp_path: Path) -> None:
    mailer = MemoryMailer()
    with bootstrap_in(tmp_path / "data", mailer=mailer) as system:
        a = audience.create_list(system.deps, "default", "A")["id"]
        b = audience.create_list(system.deps, "default", "B")["id"]
        audience.subscribe(system.deps, "default", a, "Dave@Example.com", name="Dave")
        audience.subscribe(system.deps, "default", a, "ann@example.com")
        audience.subscribe(system.deps, "default", b, "dave@example.com")
        audience.subscribe(system.deps, "default", b, "ANN@EXAMPLE.COM")
        audience.subscribe(system.deps, "default", b, "bob@example.com")
        audience.suppress(system.deps, "default", "BOB@example.com")
        camp = campaigns.create_draft(system.deps, "default", name="One each", subject="Hi", from_name="Us",
                                      from_email="us@sender.example.org", html=HTML, lists=[a, b])
        system.bus.publish([campaigns.send_now(system.deps, "default", camp.id)])
        assert system.run_until(
            lambda: reports.campaign_report(system.deps, "default", camp.id)["status"] == "sent", timeout=60)
        handed = Counter(m.rcpt_to.lower() for m in mailer.attempts)
        assert handed == Counter({"dave@example.com": 1, "ann@example.com": 1})
        # the envelope is the address as first written (list A's page came first)
        assert sorted(m.rcpt_to for m in mailer.attempts) == ["Dave@example.com", "ann@example.com"]
        rep = reports.campaign_report(system.deps, "default", camp.id)
        assert (rep["planned"], rep["sent"]) == (2, 2)


# ---------------------------------------------------------------- migration


def _old_style(store: Any, list_id: str, email: str, status: str, **extra: Any) -> None:
    """A subscriber as the code before the rule wrote it: keyed by the address as typed."""
    store.put({"pk": dom.subscribers_pk("default", list_id), "sk": f"S#{email}", "email": email,
               "list": list_id, "name": extra.pop("name", ""), "fields": extra.pop("fields", {}),
               "status": status, "source": "api", **extra})  # fmt: skip
    store.update(dom.account_pk("default"), dom.list_sk(list_id), add={dom.count_attr(status): 1})


def test_migrate_merges_case_duplicates_in_a_data_folder(cli: CliRunner, tmp_path: Path) -> None:
    def run(*args: str) -> Any:
        return ok(cli, *args)

    news = run("lists", "create", "News", "--field", "city")["id"]
    other = run("lists", "create", "Other")["id"]
    close_apps()
    with bootstrap_in(tmp_path / "data") as system:  # write what the old code left behind
        st = system.store
        _old_style(st, news, "Dave@example.com", "subscribed", name="Dave", fields={"city": "Oslo"},
                   created_at=100.0, updated_at=100.0)
        _old_style(st, news, "dave@example.com", "unsubscribed", fields={"age": "41"},
                   created_at=200.0, updated_at=300.0)
        _old_style(st, news, "DAVE@example.com", "subscribed", name="D. Dave", created_at=150.0, updated_at=400.0)
        _old_style(st, news, "Solo@example.com", "subscribed", created_at=100.0, updated_at=100.0)
        _old_style(st, news, "ann@example.com", "subscribed", created_at=100.0, updated_at=100.0)
        _old_style(st, other, "DAVE@example.com", "subscribed", created_at=500.0, updated_at=500.0)
        for email, at in (("Eve@example.com", 10.0), ("eve@example.com", 20.0)):
            st.put({"pk": dom.suppression_pk("default"), "sk": f"SUP#{email}", "email": email,
                    "reason": "manual", "created_at": at})  # fmt: skip

    res = cli.invoke(cli_app, ["migrate"])
    assert res.exit_code == 0, res.output
    assert "Dave@example.com" in res.output and "(unsubscribed)" in res.output
    close_apps()
    second = run("migrate")["items"]
    assert [(r["rekeyed"], r["mailboxes_merged"]) for r in second] == [(0, 0)]  # nothing left to do

    subs = run("subscribers", "ls", "--list", "News")["items"]
    assert sorted(s["email"] for s in subs) == ["Dave@example.com", "Solo@example.com", "ann@example.com"]
    dave = run("subscribers", "show", "DAVE@example.com", "--list", "News")
    assert dave["status"] == "unsubscribed"  # the strictest of the three
    assert dave["name"] == "D. Dave"  # the most recently updated, non-empty
    assert dave["fields"] == {"city": "Oslo", "age": "41"}
    counts = run("lists", "show", "News")["counts"]
    assert (counts["subscribed"], counts["unsubscribed"]) == (2, 1)
    assert run("subscribers", "show", "solo@example.com", "--list", "News")["email"] == "Solo@example.com"
    assert run("subscribers", "show", "dave@example.com", "--list", "Other")["email"] == "DAVE@example.com"
    sups = run("suppression", "ls")["items"]
    assert [s["email"] for s in sups] == ["Eve@example.com"]  # the first written
    history = run("subscribers", "history", "dave@example.com")
    merged = [e for e in history["events"] if e["event"] == "merged"]
    assert len(merged) == 2 and {e["door"] for e in merged} == {"migration"}
