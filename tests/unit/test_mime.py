"""Hand-built MIME must parse like, and decode to the same as, the stdlib's EmailMessage."""

from __future__ import annotations

import email
import email.policy
import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lunamail.lib.mime import (
    Attachment,
    CampaignMime,
    extra_header_problems,
    format_date,
    header_safe,
    make_message_id,
    qp_encode,
)

UNSUB = "https://lists.example.com/u/tok.abc123"
DATE = 1_700_000_000.0


def campaign(**kw: object) -> CampaignMime:
    args: dict[str, object] = {
        "from_email": "news@example.com",
        "from_name": "Example News",
        "list_id": "news.example.com",
        "reply_to": "help@example.com",
        "extra_headers": {"X-Lunamail-Campaign": "camp-1"},
    }
    args.update(kw)
    return CampaignMime(**args)  # type: ignore[arg-type]


def build(c: CampaignMime, **kw: str) -> bytes:
    args: dict[str, Any] = {
        "to_email": "bob@example.org",
        "to_name": "Bob",
        "subject": "Hello",
        "html": "<p>Hi</p>",
        "text": "Hi",
        "unsubscribe_url": UNSUB,
        "message_id": "<m1@example.com>",
    }
    args.update(kw)
    return c.build(date=DATE, **args)


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def reference(from_name: str, to_name: str, subject: str, html: str, text: str) -> EmailMessage:
    """The same input through the stdlib, the slow but trusted way."""
    m = EmailMessage()
    m["From"] = Address(from_name, addr_spec="news@example.com")
    m["To"] = Address(to_name, addr_spec="bob@example.org")
    m["Subject"] = subject
    m.set_content(text, cte="quoted-printable")
    m.add_alternative(html, subtype="html", cte="quoted-printable")
    return parse(m.as_bytes(policy=email.policy.SMTP))


def all_defects(msg: EmailMessage) -> list[object]:
    return [d for part in msg.walk() for d in part.defects]


def check_lines(raw: bytes) -> None:
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF"
    assert b"\r" not in raw.replace(b"\r\n", b""), "bare CR"
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78


# Text the stdlib treats as line breaks beyond CR/LF would split differently; keep them out.
_ODD_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
text_st = st.text(st.characters(codec="utf-8", exclude_characters=_ODD_BREAKS), max_size=300)
name_st = st.text(st.characters(codec="utf-8", exclude_categories=["Cc"], exclude_characters=_ODD_BREAKS), max_size=80)
lines_st = st.lists(
    st.one_of(
        text_st,
        st.sampled_from([".", "..", ".x", "From here", "trailing  ", "tab\t", "", "=", "x" * 200]),
    ),
    max_size=8,
).map("\r\n".join)


@settings(max_examples=80, deadline=None)
@given(from_name=name_st, to_name=name_st, subject=name_st, html=lines_st, text=lines_st)
@example(from_name="Ünïcode — Shop", to_name='Bob "B" O\'Neil', subject="日本語" * 40, html=".\n.", text="From x\r\r\n")
@example(from_name="a" * 120, to_name=" sp  aced ", subject="word " * 60, html="x" * 2000, text=" ")
@example(from_name="=?utf-8?q?x?=", to_name="", subject="a\r\nBcc: evil@x", html="", text="")
def test_matches_stdlib(from_name: str, to_name: str, subject: str, html: str, text: str) -> None:
    raw = build(campaign(from_name=from_name), to_name=to_name, subject=subject, html=html, text=text)
    check_lines(raw)
    mine = parse(raw)
    assert all_defects(mine) == []
    # control characters never reach a header: the name and subject as build() writes them
    to_shown = to_name if to_name.isprintable() else header_safe(to_name)
    flat = subject.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    ref = reference(from_name, to_shown, flat if flat.isprintable() else header_safe(flat), html, text)
    for h, name in (("From", from_name), ("To", to_shown)):
        got = mine[h].addresses[0]
        assert got.addr_spec == ref[h].addresses[0].addr_spec
        if "=?" in name:  # the stdlib decodes encoded-word look-alikes; we keep them literal
            assert got.display_name == name.strip()
        elif re.search(rb"^" + h.encode() + rb":[^<]*\?=\r\n =\?", raw, re.M):
            # adjacent encoded-words join with no space (RFC 2047 6.2); the stdlib's phrase
            # parser keeps one, so compare without whitespace
            assert re.sub(r"\s", "", got.display_name) == re.sub(r"\s", "", ref[h].addresses[0].display_name)
        else:  # exactly the input, or what the stdlib makes of it (it trims and squeezes spaces)
            assert got.display_name in (ref[h].addresses[0].display_name, name)
    assert str(mine["Subject"]).strip() == str(ref["Subject"]).strip()
    for kind in ("plain", "html"):
        mine_part, ref_part = mine.get_body((kind,)), ref.get_body((kind,))
        assert mine_part is not None and ref_part is not None
        assert mine_part.get_content() == ref_part.get_content()
        assert mine_part.get_content_charset() == "utf-8"


def test_headers_and_structure() -> None:
    raw = build(campaign(unsubscribe_mailto="unsub@example.com"), subject="Hi there")
    msg = parse(raw)
    assert all_defects(msg) == []
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["List-Unsubscribe"] == f"<{UNSUB}>, <mailto:unsub@example.com>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] == "<news.example.com>"
    assert msg["Reply-To"] == "help@example.com"
    assert msg["X-Lunamail-Campaign"] == "camp-1"
    assert msg["Message-ID"] == "<m1@example.com>"
    assert msg["MIME-Version"] == "1.0"
    assert parsedate_to_datetime(msg["Date"]).timestamp() == DATE


def test_subject_line_breaks_cannot_inject_headers() -> None:
    msg = parse(build(campaign(), subject="Hi\r\nBcc: victim@example.net"))
    assert msg["Bcc"] is None
    assert "Bcc: victim" in str(msg["Subject"])


def test_attachments_wrap_the_alternative() -> None:
    payload = bytes(range(256)) * 50
    c = campaign(attachments=[Attachment("résumé.pdf", payload, "application/pdf")])
    raw = build(c, text="body", html="<b>body</b>")
    check_lines(raw)
    msg = parse(raw)
    assert all_defects(msg) == []
    assert msg.get_content_type() == "multipart/mixed"
    (att,) = list(msg.iter_attachments())
    assert att.get_filename() == "résumé.pdf"
    assert att.get_content() == payload
    assert max(len(x) for x in raw.split(b"\r\n")) <= 76 + 2
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "body"


def test_return_path_is_verp() -> None:
    c = campaign(bounce_domain="bounces.example.com")
    assert c.return_path("c1.r9") == "bounce+c1.r9@bounces.example.com"
    msg = parse(build(c, return_path_token="c1.r9"))
    assert msg["X-Lunamail-Token"] == "c1.r9"


def test_format_date_matches_stdlib() -> None:
    import datetime

    for ts in (0.0, DATE, 1_234_567_890.5, 4_102_444_800.0):
        dt = datetime.datetime.fromtimestamp(int(ts), datetime.UTC)
        assert format_date(ts) == format_datetime(dt)


def test_message_ids_are_unique_and_well_formed() -> None:
    ids = {make_message_id("example.com") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"<[0-9a-f]+\.[0-9a-f]{24}@example\.com>", i) for i in ids)


@given(text_st)
def test_qp_roundtrip(text: str) -> None:
    import quopri

    enc = qp_encode(text)
    assert all(len(line) <= 76 for line in enc.split(b"\r\n"))
    normalised = re.sub(r"\r\n|\r|\n", "\r\n", text)
    if not normalised.endswith("\r\n"):
        normalised += "\r\n"
    assert quopri.decodestring(enc).decode("utf-8") == normalised


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        build(campaign(), unsubscribe_url="https://x\r\nBcc: y")
    with pytest.raises(ValueError):
        build(campaign(), to_email="jörg@example.org")
    with pytest.raises(ValueError):
        campaign(extra_headers={"Bad Header": "x"})


def test_list_id_and_feedback_id_are_per_message() -> None:
    m = CampaignMime(from_email="news@example.com")
    raw = m.build(to_email="a@example.org", subject="s", html="<p>x</p>", text="x",
                  unsubscribe_url="https://example.com/u/t", message_id="<1@example.com>", date=0,
                  list_id="l1.acct.example.com", feedback_id="c1:l1:acct:lunamail")
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nList-Id: <l1.acct.example.com>\r\n" in head
    assert b"\r\nFeedback-ID: c1:l1:acct:lunamail\r\n" in head
    assert head.count(b"List-Id:") == 1


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"X-Campaign-Tag": "spring"}, None),
        ({"List-Unsubscribe": "<https://evil.example>"}, "set by the platform"),
        ({"Feedback-ID": "a:b:c:d"}, "set by the platform"),
        ({"X-Lunamail-Token": "x"}, "set by the platform"),
        ({"X-Tag": "one\r\nBcc: victim@example.com"}, "one line"),
        ({"X-Tag": "one\nBcc: victim@example.com"}, "one line"),
        ({"Bad Name": "x"}, "printable ASCII"),
        ({"X-Colon:": "x"}, "printable ASCII"),
        ({"X-Long": "x" * 901}, "longer than 900"),
    ],
)
def test_extra_headers_are_validated(headers: dict[str, str], problem: str | None) -> None:
    found = extra_header_problems(headers)
    if problem is None:
        assert found == []
    else:
        assert found and problem in found[0]
