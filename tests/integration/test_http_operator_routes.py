"""What the CLI could do and the API could not: API keys, the guard, dead letters,
exports and resends — each through the HTTP API, scoped to the key's account."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from lunamail.runtime.bootstrap import System

from .test_http_fixtures import Api, api, assert_error, make_api

__all__ = ["api"]


def test_keys_create_list_and_revoke(api: Api) -> None:
    made = api.client.post("/v1/keys", headers=api.a, json={"label": "ci"})
    assert made.status_code == 201, made.text
    new = made.json()
    assert new["secret"].startswith("lm_") and new["active"] is True and new["label"] == "ci"
    assert datetime.fromisoformat(new["created_at"]).utcoffset() is not None
    fresh = api.auth(new["secret"])
    assert api.client.get("/v1/account", headers=fresh).json()["id"] == "alpha"

    listed = api.client.get("/v1/keys", headers=api.a).json()
    assert set(listed) == {"items", "next_cursor"}
    assert new["prefix"] in [k["prefix"] for k in listed["items"]]
    assert all("secret" not in k for k in listed["items"])
    # another account's key never sees it, nor may revoke it
    assert new["prefix"] not in [k["prefix"] for k in api.client.get("/v1/keys", headers=api.b).json()["items"]]
    assert_error(api.client.delete(f"/v1/keys/{new['prefix']}", headers=api.b), 404, "not_found")

    gone = api.client.delete(f"/v1/keys/{new['prefix']}", headers=api.a)
    assert gone.status_code == 200 and gone.json()["active"] is False and gone.json()["revoked_at"]
    assert_error(api.client.get("/v1/account", headers=fresh), 401, "unauthorized")
    assert api.client.delete(f"/v1/keys/{new['prefix']}", headers=api.a).status_code == 200  # idempotent


def test_guard_status_and_thresholds(api: Api) -> None:
    status = api.client.get("/v1/guard", headers=api.a)
    assert status.status_code == 200, status.text
    assert status.json()["score"] == 100 and status.json()["locked"] is False

    changed = api.client.patch("/v1/guard/thresholds", headers=api.a, json={"campaign_bounce": 0.08, "min_sample": 50})
    assert changed.status_code == 200, changed.text
    assert changed.json()["campaign_bounce"] == 0.08 and changed.json()["min_sample"] == 50
    assert api.client.get("/v1/guard/thresholds", headers=api.a).json() == changed.json()
    assert api.client.get("/v1/guard/thresholds", headers=api.b).json()["min_sample"] != 50

    bad = api.client.patch("/v1/guard/thresholds", headers=api.a, json={"account_bounce": 2})
    assert "body.account_bounce" in assert_error(bad, 422, "invalid_input")["details"]["fields"]
    assert_error(api.client.get("/v1/guard/campaigns/nope", headers=api.a), 404, "not_found")
    cid = api.client.post("/v1/campaigns", headers=api.a, json={"name": "G"}).json()["id"]
    camp = api.client.get(f"/v1/guard/campaigns/{cid}", headers=api.a).json()
    assert camp["campaign"] == cid and camp["tripped"] is False and camp["thresholds"]["bounce"] == 0.08


@pytest.fixture()
def dlq_api(tmp_path: Path) -> Iterator[Api]:
    system, handle = make_api(tmp_path, settings={"max_attempts": 1})
    with handle.client:
        yield handle
    system.close()


def _dead_letter(system: System, account: str) -> str:
    body = orjson.dumps({"name": "audience.ImportChunk", "body": {"account": account}})
    system.queue.send("lunamail-test-dlq", body)
    [msg] = system.queue.receive(["lunamail-test-dlq"])
    assert system.queue.fail(msg, "boom\ntraceback")
    return msg.id


def test_dead_letters_are_listed_and_replayed_per_account(dlq_api: Api) -> None:
    mine = _dead_letter(dlq_api.system, "alpha")
    theirs = _dead_letter(dlq_api.system, "beta")
    listed = dlq_api.client.get("/v1/dead-letters", headers=dlq_api.a)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["id"] == mine and item["error"] == "boom" and item["message"] == "audience.ImportChunk"
    assert datetime.fromisoformat(item["failed_at"]).utcoffset() is not None

    replay = dlq_api.client.post("/v1/dead-letters/replay", headers=dlq_api.a, json={"ids": [mine, theirs]})
    assert replay.json() == {"replayed": 1, "not_found": 1}  # beta's letter is not alpha's to move
    assert [d.id for d in dlq_api.system.queue.dead_letters()] == [theirs]
    assert dlq_api.client.get("/v1/dead-letters", headers=dlq_api.a).json()["items"] == []


def test_export_and_resend_of_a_campaign(api: Api) -> None:
    cid = api.client.post("/v1/campaigns", headers=api.a, json={"name": "E"}).json()["id"]
    got = api.client.get(f"/v1/campaigns/{cid}/export?which=opened", headers=api.a)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert got.text == "email\n"  # nobody opened a campaign never sent
    assert_error(api.client.get(f"/v1/campaigns/{cid}/export?which=everyone", headers=api.a), 422, "invalid_input")
    assert_error(api.client.get(f"/v1/campaigns/{cid}/export?which=opened", headers=api.b), 404, "not_found")
    nobody = api.client.post(f"/v1/campaigns/{cid}/resend", headers=api.a, json={})
    assert_error(nobody, 409, "conflict")
    assert_error(api.client.post("/v1/campaigns/nope/resend", headers=api.a), 404, "not_found")
