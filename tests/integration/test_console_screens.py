"""The console's operator screens through its HTTP surface: the guided first run ticking
itself from real state, the campaign list's numbers in one batched read (no N+1), the
per-recipient ledger with its outcome filter and CSV, exports, and the dead letters
(admins only, their own account's, replayed)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from lunamail.config import DkimKey
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from lunamail.services.delivery import keys as delivery_keys
from tests.integration.console_fixtures import Console, make_console, signed_in

HTML = '<p>Hi {{ subscriber.name }} <a href="{{ unsubscribe_url }}">unsubscribe</a></p>'


@pytest.fixture()
def console(tmp_path: Path) -> Iterator[Console]:
    handle = make_console(tmp_path, {"max_attempts": 1})
    yield handle
    handle.system.close()


class CountingStore:
    """The store, counting the reads made through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in ("get", "get_many", "query"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            return attr(*args, **kwargs)

        return counted


def _steps(html: str) -> dict[str, str]:
    return dict(re.findall(r'<a href="[^"]*">([^<]+)</a><span class="sr-only">: (done|to do)</span>', html))


def test_the_first_run_checklist_follows_what_is_really_there(console: Console) -> None:
    deps = console.system.deps
    client, _ = signed_in(console, "owner")
    page = client.get("/").text
    assert "Get started: 5 of 5 steps left" in page and "No DKIM key yet" in page
    lst = audience.create_list(deps, "alpha", "Readers")
    assert _steps(client.get("/").text)["Create a list"] == "done"
    assert _steps(client.get("/").text)["Import your subscribers"] == "to do"
    audience.subscribe(deps, "alpha", lst["id"], "ann@example.com", name="Ann")
    c = campaigns.create_draft(deps, "alpha", name="June", subject="Hi", html=HTML, lists=[lst["id"]],
                               from_email="news@mail.alpha.example.com")
    steps = _steps(client.get("/").text)
    assert steps["Import your subscribers"] == steps["Write a campaign"] == "done"
    assert steps["Sending domain and From address"] == "to do" and steps["Send a test, then send"] == "to do"
    # a DKIM key for the From's parent domain signs it: the domain step is done
    deps.settings = dataclasses.replace(deps.settings, dkim=(DkimKey("alpha.example.com", "s1", "k.pem"),))
    page = client.get("/").text
    assert _steps(page)["Sending domain and From address"] == "done"
    assert "news@mail.alpha.example.com is signed by the key of alpha.example.com" in page
    assert f'href="/campaigns/{c.id}"' in page
    # the other account starts from nothing
    beta, _ = signed_in(console, "owner", "beta")
    assert "Get started: 5 of 5 steps left" in beta.get("/").text


def test_the_campaign_list_reads_the_same_for_3_or_30_campaigns(console: Console) -> None:
    deps = console.system.deps
    client, _ = signed_in(console, "viewer")
    store = deps.store
    reads = []
    for total in (3, 30):
        while len(campaigns.list_campaigns(deps, "alpha", limit=100).items) < total:
            campaigns.create_draft(deps, "alpha", name="C", html=HTML)
        counting = CountingStore(store)
        deps.store = counting  # type: ignore[assignment]
        try:
            for path in ("/campaigns", "/"):
                counting.reads = 0
                assert client.get(path).status_code == 200
                reads.append(counting.reads)
        finally:
            deps.store = store
    assert reads[0] == reads[2] and reads[1] == reads[3], reads  # no read per campaign


def _ledger(console: Console) -> str:
    deps = console.system.deps
    c = campaigns.create_draft(deps, "alpha", name="Sent one", html=HTML)
    lines = [("ok@example.com", {"status": "sent", "code": 250, "relay_id": "Q1"}),
             ("gone@example.com", {"status": "failed", "code": 550, "reply": "550 5.1.1 no such user"}),
             ("=cmd@example.com", {"status": "failed", "code": 550, "reply": "=HYPERLINK(\"x\")"}),
             ("slow@example.com", {"status": "deferred", "code": 451, "reply": "451 4.7.1 later", "attempts": 2})]
    for email, rec in lines:
        pk, sk = delivery_keys.record_key("alpha", c.id, email)
        deps.store.put({"pk": pk, "sk": sk, "at": 1_900_000_000.0, **rec})
    return c.id


def test_the_recipients_ledger_filters_by_outcome_and_downloads_csv(console: Console) -> None:
    cid = _ledger(console)
    viewer, _ = signed_in(console, "viewer")
    page = viewer.get(f"/campaigns/{cid}/recipients").text
    assert all(e in page for e in ("ok@example.com", "gone@example.com", "slow@example.com"))
    failed = viewer.get(f"/campaigns/{cid}/recipients", params={"status": "failed"}).text
    assert "gone@example.com" in failed and "550 5.1.1 no such user" in failed and "ok@example.com" not in failed
    deferred = viewer.get(f"/campaigns/{cid}/recipients", params={"status": "deferred"}).text
    assert "slow@example.com" in deferred and "(2 tries)" in deferred
    assert viewer.get(f"/campaigns/{cid}/recipients", params={"status": "bogus"}).status_code == 422
    csv = viewer.get(f"/campaigns/{cid}/recipients.csv", params={"status": "failed"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    rows = csv.text.splitlines()
    assert rows[0].startswith("email,status,code") and len(rows) == 3
    assert not any(r.startswith("=") for r in rows)  # formulas neutralised
    assert viewer.get(f"/campaigns/{cid}/export.csv", params={"which": "opened"}).text.splitlines() == ["email"]
    # another account's users find nothing there
    beta, _ = signed_in(console, "owner", "beta")
    assert beta.get(f"/campaigns/{cid}/recipients").status_code == 404
    assert beta.get(f"/campaigns/{cid}/recipients.csv").status_code == 404


def _dead_letter(console: Console, account: str) -> str:
    queue = console.system.queue
    queue.send("lunamail-test-dlq", orjson.dumps({"name": "audience.ImportChunk", "body": {"account": account}}))
    [msg] = queue.receive(["lunamail-test-dlq"])
    assert queue.fail(msg, "relay down\ntraceback here")
    return msg.id


def test_dead_letters_are_admins_only_per_account_and_replayed(console: Console) -> None:
    mine, theirs = _dead_letter(console, "alpha"), _dead_letter(console, "beta")
    for role in ("viewer", "editor", "sender"):
        client, token = signed_in(console, role)
        assert client.get("/dead-letters").status_code == 403
        assert client.post("/dead-letters/replay", data={"csrf": token, "ids": mine}).status_code == 403
        assert "Dead letters" not in client.get("/").text
    admin, token = signed_in(console, "admin")
    page = admin.get("/dead-letters").text
    assert f'value="{mine}"' in page and f'value="{theirs}"' not in page and "relay down" in page
    assert admin.post("/dead-letters/replay", data={"csrf": token}).status_code == 422  # nothing chosen
    done = admin.post("/dead-letters/replay", data={"csrf": token, "ids": [mine, theirs]})
    assert done.status_code == 200 and "Replayed 1 message" in done.text
    assert [d.id for d in console.system.queue.dead_letters()] == [theirs]
    assert "No dead letters" in admin.get("/dead-letters").text


def test_retry_of_temporary_failures_goes_through_its_use_case(console: Console) -> None:
    cid = campaigns.create_draft(console.system.deps, "alpha", name="Draft", html=HTML).id
    viewer, token = signed_in(console, "viewer")
    assert viewer.post(f"/campaigns/{cid}/retry-failed", data={"csrf": token}).status_code == 403
    sender, token = signed_in(console, "sender")
    resp = sender.post(f"/campaigns/{cid}/retry-failed", data={"csrf": token})
    assert resp.status_code == 409 and "retry" in resp.text.lower()  # a draft has nothing sent to retry
    assert console.published == []
