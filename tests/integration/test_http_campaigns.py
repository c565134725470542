"""The campaigns REST API on a real system (SQLite files, the send path routed, a memory
mailer): create -> preview -> test -> send end to end, tenant isolation, error shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lunamail.domain.campaigns import (
    CampaignCancelled,
    CampaignPaused,
    CampaignResumed,
    CampaignSendStarted,
    SendCampaign,
    SendTest,
)
from lunamail.domain.messages import Later
from lunamail.services.reports import api as reports

from .test_http_campaigns_fixtures import CampaignApi, capi
from .test_http_fixtures import assert_error

__all__ = ["capi"]  # the fixture, re-exported so pytest finds it here

READERS = ["ann@example.org", "bob@example.org", "cy@example.org"]


def test_create_preview_send_end_to_end(capi: CampaignApi) -> None:
    list_id = capi.audience(capi.a, "Readers", READERS)
    camp = capi.draft(capi.a, ["Readers"])  # by name: stored as the id
    cid = camp["id"]
    assert camp["status"] == "draft" and camp["lists"] == [list_id]
    assert "send_token" not in camp and "edit" in camp["actions"]

    shown = capi.client.post(
        f"/v1/campaigns/{cid}/preview",
        headers=capi.a,
        json={"subscriber": {"email": "zed@example.org", "name": "Zed", "fields": {}}},
    )
    assert shown.status_code == 200, shown.text
    assert shown.json()["subject"] == "Hello Zed"
    assert "zed@example.org" in shown.json()["html"] and "Zed" in shown.json()["text"]
    sample = capi.client.post(f"/v1/campaigns/{cid}/preview", headers=capi.a)
    assert sample.status_code == 200 and sample.json()["subject"] == "Hello Jane Doe"

    tested = capi.client.post(f"/v1/campaigns/{cid}/test", headers=capi.a,
                              json={"addresses": ["qa@example.net"]})
    assert tested.status_code == 202, tested.text
    assert [m.addresses for m in capi.of_type(SendTest)] == [("qa@example.net",)]

    sent = capi.client.post(f"/v1/campaigns/{cid}/send", headers=capi.a)
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "sending" and sent.json()["audience_size"] == len(READERS)
    started = capi.of_type(CampaignSendStarted)
    assert len(started) == 1 and started[0].lists == (list_id,)

    deps = capi.system.deps
    done = capi.system.run_until(
        lambda: reports.campaign_report(deps, "alpha", cid)["status"] == "sent", timeout=60
    )
    assert done, reports.campaign_report(deps, "alpha", cid)
    assert capi.status(capi.a, cid) == "sent"
    report = capi.client.get(f"/v1/campaigns/{cid}/report", headers=capi.a).json()
    assert report["sent"] == len(READERS) and report["campaign_status"] == "sent"
    got = sorted(m.rcpt_to for m in capi.mailer.sent)
    assert got == sorted([*READERS, "qa@example.net"])  # the test copy plus the audience


def test_unknown_list_is_422_naming_the_entry(capi: CampaignApi) -> None:
    capi.audience(capi.a, "Readers", [])
    resp = capi.client.post("/v1/campaigns", headers=capi.a,
                            json={"name": "x", "lists": ["Readers", "Nope"]})
    err = assert_error(resp, 422, "invalid_input")
    assert set(err["details"]["fields"]) == {"lists[1]"}
    # another account's list is unknown too
    capi.audience(capi.b, "Theirs", [])
    resp = capi.client.post("/v1/campaigns", headers=capi.a, json={"name": "x", "lists": ["Theirs"]})
    assert_error(resp, 422, "invalid_input")


def test_template_error_has_part_line_and_message(capi: CampaignApi) -> None:
    resp = capi.client.post("/v1/campaigns", headers=capi.a,
                            json={"name": "Broken", "html": "<p>ok</p>\n<p>{{ subscriber.name }</p>"})
    err = assert_error(resp, 422, "invalid_template")
    assert err["details"]["part"] == "html"
    assert err["details"]["line"] == 2
    assert err["details"]["message"]
    # the same on PATCH of a draft
    cid = capi.draft(capi.a, [])["id"]
    resp = capi.client.patch(f"/v1/campaigns/{cid}", headers=capi.a, json={"subject": "{% if %}"})
    err = assert_error(resp, 422, "invalid_template")
    assert err["details"]["part"] == "subject"


def test_pre_send_refusal_lists_reasons(capi: CampaignApi) -> None:
    capi.audience(capi.a, "Readers", READERS)
    cid = capi.draft(capi.a, ["Readers"], html="<p>No way out</p>")["id"]
    resp = capi.client.post(f"/v1/campaigns/{cid}/send", headers=capi.a)
    err = assert_error(resp, 422, "pre_send_check_failed")
    assert any("unsubscribe link" in r for r in err["details"]["reasons"])
    assert capi.status(capi.a, cid) == "draft"
    assert capi.of_type(CampaignSendStarted) == []  # nothing reached the bus

    empty = capi.audience(capi.a, "Empty", [])
    cid2 = capi.draft(capi.a, [empty])["id"]
    err = assert_error(capi.client.post(f"/v1/campaigns/{cid2}/send", headers=capi.a),
                       422, "pre_send_check_failed")
    assert "the audience has no subscribers" in err["details"]["reasons"]


def test_illegal_transitions_are_409(capi: CampaignApi) -> None:
    cid = capi.draft(capi.a, [])["id"]
    for action in ("pause", "resume", "cancel"):
        err = assert_error(capi.client.post(f"/v1/campaigns/{cid}/{action}", headers=capi.a),
                           409, "illegal_transition")
        assert err["details"] == {"status": "draft", "action": action}
    assert capi.of_type(CampaignPaused) == []


def test_pause_resume_cancel_publish_their_events(capi: CampaignApi) -> None:
    capi.audience(capi.a, "Readers", READERS)
    cid = capi.draft(capi.a, ["Readers"])["id"]
    assert capi.client.post(f"/v1/campaigns/{cid}/send", headers=capi.a).status_code == 202
    paused = capi.client.post(f"/v1/campaigns/{cid}/pause", headers=capi.a, json={"reason": "typo"})
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert paused.json()["reason"] == "typo"
    resumed = capi.client.post(f"/v1/campaigns/{cid}/resume", headers=capi.a)
    assert resumed.json()["status"] == "sending"
    cancelled = capi.client.post(f"/v1/campaigns/{cid}/cancel", headers=capi.a)
    assert cancelled.json()["status"] == "cancelled"
    controls = (CampaignPaused, CampaignResumed, CampaignCancelled)
    assert [type(m) for m in capi.published if isinstance(m, controls)] == list(controls)
    # a draft that never started edits fine; a cancelled one cannot be edited but can go
    assert_error(capi.client.patch(f"/v1/campaigns/{cid}", headers=capi.a, json={"name": "y"}),
                 409, "illegal_transition")
    assert capi.client.delete(f"/v1/campaigns/{cid}", headers=capi.a).status_code == 204
    assert_error(capi.client.get(f"/v1/campaigns/{cid}", headers=capi.a), 404, "not_found")


def test_schedule_publishes_a_delayed_send(capi: CampaignApi) -> None:
    capi.audience(capi.a, "Readers", READERS)
    cid = capi.draft(capi.a, ["Readers"])["id"]
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    resp = capi.client.post(f"/v1/campaigns/{cid}/schedule", headers=capi.a,
                            json={"at": at.isoformat()})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "scheduled"
    assert datetime.fromisoformat(resp.json()["scheduled_at"]) == at  # RFC 3339 with an offset
    (later,) = [m for m in capi.published if isinstance(m, Later)]
    assert isinstance(later.message, SendCampaign) and later.message.at == at.timestamp()
    assert timedelta(days=1) < timedelta(seconds=later.delay) <= timedelta(days=2)
    # a local time needs a zone; a bad zone names the field
    err = assert_error(capi.client.post(f"/v1/campaigns/{cid}/schedule", headers=capi.a,
                                        json={"at": "2031-01-01T09:00", "tz": "Mars/Olympus"}),
                       422, "invalid_input")
    assert "tz" in err["details"]["fields"]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("patch", "", {"name": "mine now"}),
        ("delete", "", None),
        ("post", "/preview", None),
        ("post", "/test", {"addresses": ["x@example.net"]}),
        ("post", "/send", None),
        ("post", "/schedule", {"at": "2031-01-01T09:00:00+00:00"}),
        ("post", "/pause", None),
        ("post", "/resume", None),
        ("post", "/cancel", None),
        ("get", "/report", None),
        ("get", "/report/timeseries", None),
        ("get", "/report/stream", None),
    ],
)
def test_other_accounts_campaigns_are_404(
    capi: CampaignApi, method: str, suffix: str, body: dict[str, object] | None
) -> None:
    capi.audience(capi.a, "Readers", READERS)
    cid = capi.draft(capi.a, ["Readers"])["id"]
    assert capi.client.post(f"/v1/campaigns/{cid}/send", headers=capi.a).status_code == 202
    before = list(capi.published)
    resp = capi.client.request(method, f"/v1/campaigns/{cid}{suffix}", headers=capi.b, json=body)
    assert_error(resp, 404, "not_found")
    assert capi.published == before  # nothing published for B
    assert capi.status(capi.a, cid) == "sending"


def test_listing_filters_by_status_and_pages(capi: CampaignApi) -> None:
    capi.audience(capi.a, "Readers", READERS)
    ids = [capi.draft(capi.a, ["Readers"], name=f"c{n}")["id"] for n in range(3)]
    capi.draft(capi.b, [], name="theirs")
    assert capi.client.post(f"/v1/campaigns/{ids[0]}/send", headers=capi.a).status_code == 202

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        resp = capi.client.get("/v1/campaigns", headers=capi.a, params=params)
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        assert all("html" not in i for i in items)
        seen += [i["id"] for i in items]
        cursor = resp.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]  # newest first, only A's

    drafts = capi.client.get("/v1/campaigns", headers=capi.a, params={"status": "draft"}).json()
    assert [i["id"] for i in drafts["items"]] == ids[:0:-1]
    assert_error(capi.client.get("/v1/campaigns", headers=capi.a, params={"status": "bogus"}),
                 422, "invalid_input")
    # a cursor of A's listing is no good to B
    first = capi.client.get("/v1/campaigns", headers=capi.a, params={"limit": 1}).json()
    resp = capi.client.get("/v1/campaigns", headers=capi.b,
                           params={"cursor": first["next_cursor"]})
    assert_error(resp, 422, "invalid_input")


def test_requires_a_key(capi: CampaignApi) -> None:
    assert_error(capi.client.get("/v1/campaigns"), 401, "unauthorized")
    assert_error(capi.client.post("/v1/campaigns", json={"name": "x"}), 401, "unauthorized")
