"""Mapping SES notification JSON (tests/events/ses_*.json) to plain event dicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from lunamail.lib.verp import campaign_ref
from lunamail.services.feedback.sns import parse_ses_notification

EVENTS = Path(__file__).resolve().parents[1] / "events"
CORPUS_KEY = b"lunamail-corpus-key"  # the key the VERP fixtures were made with


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((EVENTS / name).read_bytes())
    return doc


def test_permanent_bounce_maps_each_recipient_hard_with_header_mapping() -> None:
    events = parse_ses_notification(load("ses_bounce_permanent.json"))
    assert [(e["type"], e["email"], e["bounce_type"], e["status"]) for e in events] == [
        ("bounce", "jdoe@example.net", "hard", "5.1.1"),
        ("bounce", "pat.kim@example.org", "hard", "5.1.1"),
    ]
    first = events[0]
    assert (first["account"], first["campaign"], first["source"]) == ("acme", "spring-sale", "ses")
    assert "User unknown" in first["diagnostic"] and first["sub_type"] == "General"
    assert first["at"] == pytest.approx(1715677961.532)
    assert first["message_id"].startswith("0100018f7a2b3a11")


def test_transient_bounce_is_soft_and_tags_win() -> None:
    (event,) = parse_ses_notification(load("ses_bounce_transient.json"))
    assert (event["bounce_type"], event["status"], event["sub_type"]) == (
        "soft",
        "4.2.2",
        "MailboxFull",
    )
    assert (event["account"], event["campaign"]) == ("acme", "spring-sale")


def test_undetermined_bounce_is_soft_and_maps_through_verp() -> None:
    doc = load("ses_bounce_undetermined_verp.json")
    (plain,) = parse_ses_notification(doc)
    assert (plain["bounce_type"], plain["account"], plain["campaign"]) == ("soft", "", "")
    refs = {campaign_ref(CORPUS_KEY, "spring-sale"): "spring-sale"}
    (mapped,) = parse_ses_notification(doc, key_for_account=lambda _a: CORPUS_KEY,
                                       default_account="acme", campaign_for_ref=refs.get)
    assert (mapped["account"], mapped["campaign"], mapped["email"]) == (
        "acme",
        "spring-sale",
        "chris@example.com",
    )
    (forged,) = parse_ses_notification(doc, key_for_account=lambda _a: b"wrong-key",
                                       default_account="acme", campaign_for_ref=refs.get)
    assert forged["campaign"] == ""


def test_complaint() -> None:
    (event,) = parse_ses_notification(load("ses_complaint.json"))
    assert (event["type"], event["email"], event["feedback_type"]) == (
        "complaint",
        "casey@example.com",
        "abuse",
    )
    assert (event["account"], event["campaign"]) == ("acme", "spring-sale")


def test_delivery_delay_reject_open_click() -> None:
    (delivery,) = parse_ses_notification(load("ses_delivery.json"))
    assert (delivery["type"], delivery["email"]) == ("delivery", "sam@example.com")
    (delay,) = parse_ses_notification(load("ses_delivery_delay.json"))
    assert (delay["type"], delay["status"], delay["delay_type"]) == (
        "delivery_delay",
        "4.4.1",
        "TransientCommunicationFailure",
    )
    (reject,) = parse_ses_notification(load("ses_reject.json"))
    assert (reject["type"], reject["email"], reject["reason"]) == (
        "reject",
        "lee.wong@example.net",
        "Bad content",
    )
    (opened,) = parse_ses_notification(load("ses_open.json"))
    assert (opened["type"], opened["email"], opened["ip"]) == (
        "open",
        "sam@example.com",
        "203.0.113.50",
    )
    (click,) = parse_ses_notification(load("ses_click.json"))
    assert click["link"].startswith("https://shop.acme.example.com/")
    assert click["link_tags"] == {"lm_link": ["hero"]}


def test_sns_envelope_and_raw_json_are_unwrapped() -> None:
    envelope = load("sns_notification.json")
    (event,) = parse_ses_notification(envelope)
    assert (event["type"], event["email"], event["campaign"]) == (
        "bounce",
        "jdoe@example.net",
        "spring-sale",
    )
    assert parse_ses_notification(envelope["Message"]) == [event]


def test_custom_tag_names_and_default_account() -> None:
    doc = load("ses_delivery.json")
    doc["mail"]["tags"] = {"tenant": ["t9"], "camp": ["c7"]}
    (event,) = parse_ses_notification(doc, account_tags=("tenant",), campaign_tags=("camp",))
    assert (event["account"], event["campaign"]) == ("t9", "c7")
    (fallback,) = parse_ses_notification(
        load("ses_bounce_undetermined_verp.json"), default_account="solo"
    )
    assert fallback["account"] == "solo"


def test_unknown_types_give_nothing_and_garbage_is_a_value_error() -> None:
    assert parse_ses_notification({"eventType": "Send", "mail": {}}) == []
    assert parse_ses_notification({"notificationType": "Bounce"}) == []
    with pytest.raises(ValueError):
        parse_ses_notification([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse_ses_notification(b"not json")
