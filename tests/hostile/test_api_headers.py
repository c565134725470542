"""Hostile API inputs get a clean 4xx in the API's error shape (never a 5xx), and hostile
values that reach a header (a subscriber's name in ``To:``, a subject) leave every generated
message parseable with zero defects by the standard library."""

from __future__ import annotations

import email
import email.policy
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lunamail.lib.mime import CampaignMime
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.audience import api as audience
from lunamail.services.audience.errors import InvalidInput
from tests.hostile import sheet
from tests.hostile.server import EXTRA, Served, clean_refusal, request


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    extra = {**EXTRA, "edge_max_body_bytes": 2_000_000}  # so the app, not the edge, sees big fields
    with Served(tmp_path_factory.mktemp("hostile-api") / "data", extra=extra) as s:
        yield s
        assert "Traceback" not in s.output(), s.output()[-3000:]


def _call(s: Served, method: str, path: str, body: object = None, auth: bool = True) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    head = [f"{method} {path} HTTP/1.1", "Host: x", "Connection: close", f"Content-Length: {len(data)}",
            "Content-Type: application/json"]
    if auth:
        head.append(f"Authorization: Bearer {s.key}")
    return request(s.port, ("\r\n".join(head) + "\r\n\r\n").encode() + data, 10)


def test_hostile_api_inputs_are_clean_4xx(served: Served) -> None:
    created = _call(served, "POST", "/v1/lists", {"name": "Hostile"})
    list_id = json.loads(created.partition(b"\r\n\r\n")[2])["id"]
    subs = f"/v1/lists/{list_id}/subscribers"
    cases = [
        ("GET", "/v1/lists?cursor=%C3%A9%C3%A9.%C3%A9", None),
        ("GET", "/v1/lists?cursor=" + "A" * 3000, None),
        ("GET", "/v1/lists?limit=-1", None),
        ("GET", "/v1/lists?limit=99999999999999999999", None),
        ("PUT", "/uploads/imports/default/x.csv?expires=9999999999&sig=%C3%A9%C3%A9", None),
        ("PUT", "/uploads/imports/default/x.csv?expires=notanumber&sig=x", None),
        ("POST", subs, {"email": "a@example.com", "fields": {"f": "x" * 410_000}}),
        ("POST", subs, {"email": "a@example.com", "fields": {f"k{i}": "y" * 1000 for i in range(300)}}),
        ("POST", subs, {"email": "a@example.com", "name": "x" * 500_000}),
        ("POST", subs, {"email": "\u0000@example.com"}),
        ("POST", subs, {"email": ["not", "a", "string"]}),
        ("POST", "/v1/lists", {"name": {"$gt": ""}}),
        ("GET", "/v1/lists/..%2F..%2Fetc%2Fpasswd", None),
        ("GET", "/v1/lists/" + "%00" * 10, None),
        ("POST", "/v1/campaigns", {"name": "x", "html": "{{ ''.__class__ }}"}),
    ]
    refused = 0
    failures = []
    for method, path, body in cases:
        answer = _call(served, method, path, body, auth=not path.startswith("/uploads/"))
        if clean_refusal(answer, tuple(range(400, 500))):
            refused += 1
        else:
            failures.append((method, path, answer[:200]))
    sheet.record("api", "hostile API inputs", len(cases), refused, len(cases) - refused)
    assert failures == []


def test_a_name_with_control_characters_is_stored_clean(tmp_path: Path) -> None:
    with bootstrap_in(tmp_path / "data") as system:
        lst = audience.create_list(system.deps, "default", "L")
        sub = audience.subscribe(system.deps, "default", str(lst["id"]), "a@example.com",
                                 name="Bob\r\nBcc: evil@example.net\x00\x1b[31m")
        assert sub["name"] == "Bob Bcc: evil@example.net [31m"


def test_an_import_header_of_100000_columns_is_refused(tmp_path: Path) -> None:
    with bootstrap_in(tmp_path / "data") as system:
        audience.create_list(system.deps, "default", "L")
        header = "email," + ",".join(f"c{i}" for i in range(100_000))
        system.deps.blobs.put_stream("uploads/wide.csv", io.BytesIO(f"{header}\na@example.com\n".encode()))
        with pytest.raises(InvalidInput) as info:
            audience.start_import(system.deps, "default", "L", "uploads/wide.csv")
        sheet.record("csv", "100,000-column header", 1, 1, 0)
        assert "100,001 columns" in str(info.value)


_MIME = CampaignMime(from_email="news@example.com", from_name="News \u2022 Daily", list_id="l1", list_name="L")
_HOSTILE_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=120) | st.sampled_from([
    "Bob\r\nBcc: evil@example.net", "\x00\x01\x1b[31m", "=?utf-8?q?=0D=0ABcc:_x?=", "a" * 500, '"\\"', "\u202e",
    "Zoë \t Müller", "\r\n\r\n<html>", ";,:<>@"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_HOSTILE_TEXT, subject=_HOSTILE_TEXT)
def test_every_generated_message_parses_without_defects(name: str, subject: str) -> None:
    subject = " ".join(subject.split())  # a rendered subject is one line (templating does this)
    data = _MIME.build(to_email="rcpt@example.org", to_name=name, subject=subject or "x",
                       html="<p>hi</p>", text="hi", unsubscribe_url="https://x.example/u/t",
                       message_id="<m1@example.com>", date=1_700_000_000.0)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    defects = [*msg.defects, *(d for part in msg.walk() for d in part.defects)]
    for header in ("To", "Subject", "From"):
        defects += list(getattr(msg[header], "defects", ()))
    assert defects == []
    assert len(msg.get_all("To") or []) == 1 and msg.get_all("Bcc") is None
    assert msg["To"].addresses[0].addr_spec == "rcpt@example.org"
