"""The classifier against a corpus of realistic bounces, complaints and auto-replies.

Each ``tests/data/dsn/<case>.eml`` has a ``<case>.json`` with the expected
fields; ``diagnostic_contains`` is checked as a substring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from lunamail.lib.verp import decode_return_path
from lunamail.services.feedback.dsn import bounce_type_for, classify

CORPUS = Path(__file__).resolve().parents[1] / "data" / "dsn"
CASES = sorted(p.stem for p in CORPUS.glob("*.eml"))
CORPUS_KEY = b"lunamail-corpus-key"  # the key the corpus VERP tokens were made with


def load(case: str) -> tuple[bytes, dict[str, Any]]:
    return (CORPUS / f"{case}.eml").read_bytes(), orjson.loads(
        (CORPUS / f"{case}.json").read_bytes()
    )


def test_corpus_is_complete() -> None:
    assert len(CASES) >= 15
    for case in CASES:
        assert (CORPUS / f"{case}.json").exists(), case


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case: str) -> None:
    raw, expected = load(case)
    got = classify(raw).to_dict()
    for key, want in expected.items():
        if key == "diagnostic_contains":
            assert want in (got["diagnostic"] or ""), (case, got["diagnostic"])
        else:
            assert got[key] == want, (case, key, got[key])


@pytest.mark.parametrize("case", CASES)
def test_corpus_verp_token_names_the_reported_recipient(case: str) -> None:
    """Where a case carries a VERP token, it decodes and agrees with the report."""
    raw, expected = load(case)
    got = classify(raw)
    if got.verp is None:
        assert expected.get("verp") is None
        return
    token = decode_return_path(lambda _a: CORPUS_KEY, got.verp, account="acme",
                               campaign_hints=["spring-sale"])
    assert token is not None and (token.account, token.campaign) == ("acme", "spring-sale")
    assert got.recipients and token.matches(got.recipients[0])


def test_crlf_line_endings_classify_the_same() -> None:
    raw, expected = load("postfix_hard_511")
    got = classify(raw.replace(b"\n", b"\r\n")).to_dict()
    assert (got["kind"], got["bounce_type"], got["recipients"], got["status"]) == (
        expected["kind"],
        expected["bounce_type"],
        expected["recipients"],
        expected["status"],
    )


def test_envelope_recipient_wins_for_verp() -> None:
    raw, _ = load("postfix_hard_511")
    env = "b+aaaaaaaaaaaaaaaaaaaaaaaa@bounces.example.com"
    assert classify(raw, envelope_to=env).verp == env
    assert classify(raw, envelope_to="plain@example.com").verp != "plain@example.com"


def test_auto_reply_is_never_a_bounce_even_from_a_bounce_like_subject() -> None:
    raw = (
        b"From: Ann <ann@example.com>\r\nTo: b+abcdefghijklmnopqrst@bounces.example.com\r\n"
        b"Subject: Auto: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nBack Monday.\r\n"
    )
    got = classify(raw)
    assert got.kind == "auto-reply" and got.bounce_type is None
    assert got.recipients == ["ann@example.com"]
    assert got.verp == "b+abcdefghijklmnopqrst@bounces.example.com"


def test_precedence_auto_reply_header() -> None:
    raw = b"From: x@example.org\r\nSubject: Thanks\r\nPrecedence: auto_reply\r\n\r\nhello\r\n"
    assert classify(raw).kind == "auto-reply"


def test_plain_reply_is_other() -> None:
    raw = b"From: x@example.org\r\nSubject: Re: Spring sale\r\n\r\nDo you ship to Norway?\r\n"
    got = classify(raw)
    assert got.kind == "other" and got.recipients == []


def test_multi_recipient_dsn_reports_each_and_hard_wins() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
        b"Final-Recipient: rfc822; full@example.net\r\nAction: failed\r\nStatus: 5.2.2\r\n"
        b"Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n\r\n"
        b"Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.0.0\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 No such user\r\n\r\n"
        b"Final-Recipient: rfc822; ok@example.net\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n"
        b"--B--\r\n"
    )
    got = classify(raw)
    assert got.kind == "bounce" and got.bounce_type == "hard"
    assert got.recipients == ["full@example.net", "gone@example.net"]
    by_email = {d.email: d for d in got.details}
    assert by_email["full@example.net"].bounce_type == "soft"
    assert by_email["gone@example.net"].status == "5.1.1"  # the detailed code beats 5.0.0
    assert by_email["gone@example.net"].bounce_type == "hard"
    assert by_email["ok@example.net"].action == "delivered"


def test_arf_not_spam_is_not_a_complaint() -> None:
    raw = (
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="Z"\r\n\r\n'
        b"--Z\r\nContent-Type: message/feedback-report\r\n\r\n"
        b"Feedback-Type: not-spam\r\nOriginal-Rcpt-To: a@example.com\r\n\r\n--Z--\r\n"
    )
    got = classify(raw)
    assert got.kind == "other" and got.feedback_type == "not-spam"
    assert got.recipients == ["a@example.com"]


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        ("5.1.1", "", "hard"),
        ("5.1.10", "RecipientNotFound", "hard"),
        ("5.2.1", "account disabled", "hard"),
        ("5.4.4", "unable to route", "hard"),
        ("5.2.2", "mailbox full", "soft"),
        ("5.7.1", "message rejected as spam", "sender"),
        ("5.7.1", "Recipient address rejected: user unknown", "hard"),
        ("5.4.7", "delivery time expired", "soft"),
        ("5.0.0", "mailbox unavailable", "hard"),
        ("5.5.0", "", "sender"),
        ("5.0.0", "", "sender"),  # a 5xx that does not say the address is bad never suppresses
        ("5.7.26", "Unauthenticated email from example.org is not accepted due to DMARC policy", "sender"),
        ("5.1.8", "Domain of sender address news@example.org does not exist", "sender"),
        ("5.1.7", "Sender address rejected: Domain not found", "sender"),
        ("5.2.1", "receiving mail at a rate that prevents additional messages", "sender"),
        ("4.2.1", "receiving mail at a rate that prevents additional messages", "sender"),
        ("5.4.6", "Too many hops", "sender"),
        ("5.7.1", "Client host blocked using zen.spamhaus.org", "sender"),
        ("5.7.606", "Access denied, banned sending IP", "sender"),
        ("5.1.10", "RESOLVER.ADR.RecipientNotFound", "hard"),
        ("5.4.1", "Recipient address rejected: Access denied", "hard"),
        ("5.4.4", "Host or domain name not found", "hard"),
        (None, "550 Message rejected because of SPF failure", "sender"),
        (None, "554 Transaction failed", "sender"),
        ("5.0.0", "over quota", "soft"),
        ("4.2.2", "user unknown", "soft"),
        ("4.7.0", "try again later", "soft"),
        (None, "550 no such user here", "hard"),
        (None, "552 mailbox full", "soft"),
        (None, "421 service not available", "soft"),
        (None, "the recipient is over quota", "soft"),
        (None, "user unknown", "hard"),
        (None, "a permanent error occurred", "sender"),
        (None, "something went wrong", "soft"),
    ],
)
def test_bounce_type_policy(status: str | None, text: str, expected: str) -> None:
    assert bounce_type_for(status, text) == expected
