"""Campaigns API and handlers against the in-memory ItemStore and a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.config import Settings
from lunamail.domain.campaign_model import Campaign, CampaignStatus, IllegalTransition
from lunamail.domain.campaigns import (
    CampaignCancelled,
    CampaignPaused,
    CampaignResumed,
    CampaignSendStarted,
    SendCampaign,
    SendTest,
)
from lunamail.domain.delivery import CampaignDelivered
from lunamail.domain.messages import Later, from_json
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.services.campaigns import api, handlers
from lunamail.services.campaigns.checks import pre_send_problems
from lunamail.services.campaigns.errors import (
    Conflict,
    InvalidInput,
    InvalidTemplate,
    NotFound,
    PreSendCheckFailed,
)

ACCT = "acct1"
HTML = '<p>Hi {{ subscriber.name }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
START = datetime(2030, 1, 1, tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def deps(clock: FakeClock) -> Deps:
    # The campaigns service uses only the store, the clock and the settings.
    return Deps(settings=Settings(), store=MemoryItemStore(clock=clock), blobs=cast(Any, None),
                clock=clock, secrets=cast(Any, None))


def ready(deps: Deps, **overrides: Any) -> Campaign:
    fields: dict[str, Any] = {
        "name": "Spring news", "subject": "News for {{ subscriber.name }}", "from_name": "Luna",
        "from_email": "news@luna.example", "html": HTML, "lists": ["l1", "l2"],
    }  # fmt: skip
    fields.update(overrides)
    return api.create_draft(deps, ACCT, **fields)


# ---------------------------------------------------------------- drafts


def test_create_get_and_update_draft(deps: Deps, clock: FakeClock) -> None:
    c = ready(deps, attachments=[{"key": "b/1", "filename": "a.pdf", "content_type": "application/pdf"}])
    assert c.status == CampaignStatus.DRAFT and c.text is None and c.created_at == START
    assert api.get(deps, ACCT, c.id) == c
    clock.advance(10)
    d = api.update_draft(deps, ACCT, c.id, subject="New subject", lists=["l3", "l3"])
    assert (d.subject, d.lists, d.updated_at, d.created_at) == ("New subject", ("l3",), START + 10, START)
    assert d.attachments == c.attachments and d.html == c.html
    assert api.get(deps, ACCT, c.id) == d
    assert api.update_draft(deps, ACCT, c.id, text="Plain {{ unsubscribe_url }}").text is not None
    assert api.update_draft(deps, ACCT, c.id, text="").text is None  # back to derived


def test_campaigns_are_scoped_to_their_account(deps: Deps) -> None:
    c = ready(deps)
    with pytest.raises(NotFound):
        api.get(deps, "other", c.id)


def test_invalid_fields_are_named(deps: Deps) -> None:
    with pytest.raises(InvalidInput) as info:
        api.create_draft(deps, ACCT, name=" ", from_email="not-an-address", subject="a\nb",
                         attachments=[{"key": "k", "filename": "../x", "content_type": "x"}])
    assert set(info.value.fields) == {"name", "from_email", "subject", "attachments[0]"}


def test_template_error_reported_at_save_with_part_and_line(deps: Deps) -> None:
    with pytest.raises(InvalidTemplate) as info:
        ready(deps, html="<p>ok</p>\n<p>{{ subscriber.name }</p>")
    assert (info.value.part, info.value.line) == ("html", 2)
    assert "html" in info.value.fields
    with pytest.raises(InvalidTemplate) as info:
        ready(deps, subject="{{ ''.__class__ }}")
    assert info.value.part == "subject" and "not allowed" in info.value.message


def test_update_only_in_draft(deps: Deps) -> None:
    c = ready(deps)
    api.send_now(deps, ACCT, c.id)
    with pytest.raises(IllegalTransition, match="cannot edit a campaign that is sending"):
        api.update_draft(deps, ACCT, c.id, name="x")


def test_idempotent_create_with_own_id(deps: Deps, clock: FakeClock) -> None:
    first = ready(deps, campaign_id="spring-2030")
    clock.advance(5)
    assert ready(deps, campaign_id="spring-2030") == first  # a retry: the saved campaign
    with pytest.raises(Conflict, match="other content"):
        ready(deps, campaign_id="spring-2030", subject="Another subject")
    api.update_draft(deps, ACCT, "spring-2030", name="Renamed")
    with pytest.raises(Conflict):  # the original request no longer matches what is stored
        ready(deps, campaign_id="spring-2030")


@pytest.mark.parametrize("bad", ["_unmapped", "_x", "", "a" * 65, "has space", "a.b"])
def test_reserved_and_malformed_ids_are_refused(deps: Deps, bad: str) -> None:
    with pytest.raises(InvalidInput):
        ready(deps, campaign_id=bad)


def test_list_newest_first_with_status_filter_and_cursor(deps: Deps, clock: FakeClock) -> None:
    ids = []
    for n in range(5):
        clock.advance(1)
        ids.append(ready(deps, name=f"c{n}").id)
    api.send_now(deps, ACCT, ids[1])
    api.send_now(deps, ACCT, ids[3])
    page = api.list_campaigns(deps, ACCT, limit=2)
    assert [c.id for c in page.items] == [ids[4], ids[3]] and page.cursor
    rest = api.list_campaigns(deps, ACCT, limit=10, cursor=page.cursor)
    assert [c.id for c in rest.items] == [ids[2], ids[1], ids[0]] and rest.cursor is None
    sending = api.list_campaigns(deps, ACCT, status="sending", limit=10)
    assert [c.id for c in sending.items] == [ids[3], ids[1]]
    with pytest.raises(InvalidInput):
        api.list_campaigns(deps, ACCT, status="bogus")


def test_delete_only_drafts(deps: Deps) -> None:
    c = ready(deps)
    api.delete(deps, ACCT, c.id)
    with pytest.raises(NotFound):
        api.get(deps, ACCT, c.id)
    s = ready(deps)
    api.send_now(deps, ACCT, s.id)
    with pytest.raises(IllegalTransition, match="cannot delete a campaign that is sending"):
        api.delete(deps, ACCT, s.id)


# ---------------------------------------------------------------- preview and test send


def test_preview_with_sample_and_given_subscriber(deps: Deps) -> None:
    c = ready(deps)
    sample = api.preview(deps, ACCT, c.id)
    assert sample.subject == "News for Jane Doe"
    assert "/u/preview" in sample.html and "Unsubscribe (" in sample.text
    mine = api.preview(deps, ACCT, c.id, {"email": "bob@x.example", "name": "Bob"})
    assert mine.subject == "News for Bob"


def test_test_send_returns_command_with_content(deps: Deps) -> None:
    c = ready(deps)
    cmd = api.test_send(deps, ACCT, c.id, ["Me@Example.com", "me@example.com"])
    assert isinstance(cmd, SendTest) and cmd.addresses == ("Me@example.com", "me@example.com")
    assert cmd.content["from_email"] == "news@luna.example"
    assert from_json(cmd.to_json()) == cmd
    with pytest.raises(InvalidInput):
        api.test_send(deps, ACCT, c.id, ["nope"])
    bare = ready(deps, from_email="")
    with pytest.raises(PreSendCheckFailed, match="no From address"):
        api.test_send(deps, ACCT, bare.id, ["me@example.com"])


# ---------------------------------------------------------------- send now and pre-send checks


def test_send_now_emits_everything_delivery_needs(deps: Deps, clock: FakeClock) -> None:
    c = ready(deps, reply_to="help@luna.example",
              attachments=[{"key": "b/1", "filename": "a.pdf", "content_type": "application/pdf"}])
    ev = api.send_now(deps, ACCT, c.id, audience_size=10)
    assert isinstance(ev, CampaignSendStarted)
    assert (ev.account, ev.campaign, ev.lists, ev.started_at) == (ACCT, c.id, ("l1", "l2"), START)
    assert ev.content == {
        "name": "Spring news", "subject": "News for {{ subscriber.name }}", "html": HTML,
        "text": "Hi {{ subscriber.name }}\n\nUnsubscribe ({{ unsubscribe_url }})\n",
        "from_name": "Luna", "from_email": "news@luna.example", "reply_to": "help@luna.example",
        "headers": {},
        "track_opens": None,  # the installation default applies at delivery
        "track_clicks": None,
        "attachments": [{"key": "b/1", "filename": "a.pdf", "content_type": "application/pdf"}],
    }  # fmt: skip
    assert from_json(ev.to_json()) == ev
    stored = api.get(deps, ACCT, c.id)
    assert stored.status == CampaignStatus.SENDING and stored.started_at == START
    with pytest.raises(IllegalTransition, match="cannot start sending a campaign that is sending"):
        api.send_now(deps, ACCT, c.id)


@pytest.mark.parametrize(
    ("overrides", "audience_size", "reason"),
    [
        ({"html": "<p>no link</p>"}, None, "the HTML has no unsubscribe link"),
        ({"html": "<p>{{ unsubscribe_url }}</p>"}, None, "the HTML has no unsubscribe link"),
        ({"text": "no link in the text"}, None, "the text part has no unsubscribe link"),
        ({"from_email": ""}, None, "no From address"),
        ({"lists": []}, None, "no audience"),
        ({}, 0, "the audience has no subscribers"),
        ({"subject": ""}, None, "no subject"),
    ],
)
def test_pre_send_refusals(deps: Deps, overrides: dict[str, Any], audience_size: int | None,
                           reason: str) -> None:
    c = ready(deps, **overrides)
    with pytest.raises(PreSendCheckFailed) as info:
        api.send_now(deps, ACCT, c.id, audience_size=audience_size)
    assert len(info.value.reasons) == 1 and info.value.reasons[0].startswith(reason)
    assert api.get(deps, ACCT, c.id).status == CampaignStatus.DRAFT  # nothing changed


def test_pre_send_refuses_invalid_from_and_broken_template() -> None:
    # Such drafts cannot be saved through the API; the checks still guard stored data.
    c = Campaign(account=ACCT, id="x", name="n", subject="s", from_email="bad@", html="{{ x.__class__ }}",
                 lists=("l",))
    reasons, compiled = pre_send_problems(c)
    assert compiled is None
    assert reasons[0].startswith("the From address 'bad@' is not valid")
    assert reasons[1].startswith("template error in the html, line 1:")


def test_all_reasons_at_once(deps: Deps) -> None:
    c = ready(deps, from_email="", lists=[], html="<p>x</p>")
    with pytest.raises(PreSendCheckFailed) as info:
        api.send_now(deps, ACCT, c.id)
    assert len(info.value.reasons) == 3


# ---------------------------------------------------------------- schedule


def test_schedule_with_a_zone_is_stored_as_utc(deps: Deps) -> None:
    c = ready(deps)
    cmd = api.schedule(deps, ACCT, c.id, "2030-06-01T09:00", tz="Europe/Paris")
    expected = datetime(2030, 6, 1, 7, 0, tzinfo=UTC).timestamp()  # CEST = UTC+2
    assert isinstance(cmd, SendCampaign) and cmd.at == expected
    stored = api.get(deps, ACCT, c.id)
    assert stored.status == CampaignStatus.SCHEDULED and stored.scheduled_at == expected
    assert stored.schedule_tz == "Europe/Paris"
    assert stored.scheduled_at_utc == datetime(2030, 6, 1, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "tz", "utc_hour"),
    [
        ("2030-01-15T09:00:00+01:00", None, 8),
        ("2030-01-15T09:00:00Z", None, 9),
        ("2030-01-15T09:00 America/New_York", None, 14),
        ("2030-01-15T09:00[Asia/Tokyo]", None, 0),
        (datetime(2030, 1, 15, 9, 0, tzinfo=UTC), None, 9),
    ],
)
def test_schedule_formats(at: Any, tz: str | None, utc_hour: int) -> None:
    when, _ = api.parse_schedule(at, tz)
    assert when.tzinfo is UTC and when.hour == utc_hour


@pytest.mark.parametrize(
    ("at", "tz", "field", "words"),
    [
        ("2030-06-01T09:00", None, "at", "UTC offset"),
        ("2030-06-01T09:00", "Mars/Olympus", "tz", "unknown time zone"),
        ("tomorrow", None, "at", "not an ISO 8601"),
        ("2030-03-31T02:30", "Europe/Paris", "at", "does not exist"),  # spring forward
    ],
)
def test_schedule_input_errors(at: str, tz: str | None, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        api.parse_schedule(at, tz)
    assert words in info.value.fields[field]


def test_schedule_in_the_past_or_broken_is_refused(deps: Deps) -> None:
    c = ready(deps)
    with pytest.raises(InvalidInput, match="in the past"):
        api.schedule(deps, ACCT, c.id, "2029-12-31T23:00:00Z")
    bad = ready(deps, html="<p>no unsubscribe</p>")
    with pytest.raises(PreSendCheckFailed):
        api.schedule(deps, ACCT, bad.id, "2030-02-01T00:00:00Z")


# ---------------------------------------------------------------- handlers


def test_scheduled_send_fires_once_due(deps: Deps, clock: FakeClock) -> None:
    c = ready(deps)
    cmd = api.schedule(deps, ACCT, c.id, "2030-01-01T01:00:00Z")
    early = handlers.handle_send_campaign(cmd, deps)  # arrived early: put back for later
    assert len(early) == 1 and isinstance(early[0], Later) and early[0].delay == 3600
    clock.advance(3600)
    out = handlers.handle_send_campaign(cmd, deps)
    assert len(out) == 1 and isinstance(out[0], CampaignSendStarted)
    assert api.get(deps, ACCT, c.id).status == CampaignStatus.SENDING
    # Redelivered: the same start again (publish may have failed), state unchanged.
    before = api.get(deps, ACCT, c.id)
    again = handlers.handle_send_campaign(cmd, deps)
    assert again == out
    assert api.get(deps, ACCT, c.id) == before


def test_stale_or_cancelled_schedule_is_ignored(deps: Deps, clock: FakeClock) -> None:
    c = ready(deps)
    first = api.schedule(deps, ACCT, c.id, "2030-01-01T01:00:00Z")
    second = api.schedule(deps, ACCT, c.id, "2030-01-01T02:00:00Z")  # moved
    clock.advance(3600)
    assert handlers.handle_send_campaign(first, deps) == []
    assert api.get(deps, ACCT, c.id).status == CampaignStatus.SCHEDULED
    assert isinstance(api.cancel(deps, ACCT, c.id), CampaignCancelled)
    clock.advance(3600)
    assert handlers.handle_send_campaign(second, deps) == []
    assert api.get(deps, ACCT, c.id).status == CampaignStatus.CANCELLED
    # Started by hand before the timer: the timer is ignored.
    d = ready(deps)
    timer = api.schedule(deps, ACCT, d.id, "2030-01-01T03:00:00Z")
    api.send_now(deps, ACCT, d.id)
    clock.advance(3600)
    assert handlers.handle_send_campaign(timer, deps) == []


def test_scheduled_send_failing_checks_marks_failed(deps: Deps, clock: FakeClock) -> None:
    c = ready(deps)
    cmd = api.schedule(deps, ACCT, c.id, "2030-01-01T01:00:00Z")
    # The data went bad after scheduling (e.g. written by an older version).
    stored = api.get(deps, ACCT, c.id)
    item = deps.store.get(f"A#{ACCT}", f"CAMP#{c.id}")
    assert item is not None
    deps.store.put({**item, "from_email": ""})
    clock.advance(3600)
    assert handlers.handle_send_campaign(cmd, deps) == []
    failed = api.get(deps, ACCT, c.id)
    assert failed.status == CampaignStatus.FAILED and failed.reason == "no From address"
    assert failed.version == stored.version + 1
    assert handlers.handle_send_campaign(cmd, deps) == []  # idempotent
    assert api.get(deps, ACCT, c.id) == failed


def test_send_command_without_time_starts_now(deps: Deps) -> None:
    c = ready(deps)
    out = handlers.handle_send_campaign(SendCampaign(account=ACCT, campaign=c.id), deps)
    assert [type(m) for m in out] == [CampaignSendStarted]
    assert handlers.handle_send_campaign(SendCampaign(account=ACCT, campaign="gone"), deps) == []


def test_pause_resume_cancel_and_delivered(deps: Deps, clock: FakeClock) -> None:
    c = ready(deps)
    with pytest.raises(IllegalTransition, match="cannot pause a campaign that is draft"):
        api.pause(deps, ACCT, c.id)
    api.send_now(deps, ACCT, c.id)
    ev = api.pause(deps, ACCT, c.id, reason="bounce  rate\nhigh")
    assert ev == CampaignPaused(account=ACCT, campaign=c.id, reason="bounce rate high", at=START)
    assert api.get(deps, ACCT, c.id).reason == "bounce rate high"
    assert api.resume(deps, ACCT, c.id) == CampaignResumed(account=ACCT, campaign=c.id, at=START)
    clock.advance(100)
    done = CampaignDelivered(account=ACCT, campaign=c.id, planned=2, sent=2, failed=0, at=clock.now())
    assert handlers.on_campaign_delivered(done, deps) == []
    sent = api.get(deps, ACCT, c.id)
    assert sent.status == CampaignStatus.SENT and sent.sent_at == START + 100
    assert handlers.on_campaign_delivered(done, deps) == []  # idempotent
    assert api.get(deps, ACCT, c.id) == sent
    with pytest.raises(IllegalTransition):
        api.cancel(deps, ACCT, c.id)


def test_delivered_after_cancel_keeps_cancelled(deps: Deps) -> None:
    c = ready(deps)
    api.send_now(deps, ACCT, c.id)
    api.cancel(deps, ACCT, c.id)
    done = CampaignDelivered(account=ACCT, campaign=c.id, planned=1, sent=1, failed=0, at=1.0)
    assert handlers.on_campaign_delivered(done, deps) == []
    assert api.get(deps, ACCT, c.id).status == CampaignStatus.CANCELLED
    gone = CampaignDelivered(account=ACCT, campaign="nope", planned=1, sent=1, failed=0, at=1.0)
    assert handlers.on_campaign_delivered(gone, deps) == []


def test_unschedule_back_to_draft(deps: Deps) -> None:
    c = ready(deps)
    cmd = api.schedule(deps, ACCT, c.id, "2030-01-01T01:00:00Z")
    d = api.unschedule(deps, ACCT, c.id)
    assert d.status == CampaignStatus.DRAFT and d.scheduled_at is None
    assert handlers.handle_send_campaign(cmd, deps) == []
