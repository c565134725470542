"""SesMailer against the Mailer contract, on moto's SES in server mode over real HTTP.

The relay's view (what SES accepted) is read from moto's model endpoint.  Per-recipient
failures that SES would only produce under real conditions (throttling, outages, dropped
connections) are injected at the HTTP layer with a botocore ``before-send`` hook that
answers with SES's own error XML, so botocore's parser and retry logic run as in
production.  Unverified senders and malformed addresses are refused by moto itself.
"""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError

from lunamail.adapters.mailer.ses import SesMailer, tags_from_headers
from lunamail.adapters.pacer import LocalPacer
from lunamail.lib.pacing import PaceConfig
from lunamail.ports.mailer import OutgoingMail

try:  # works whether or not tests/contract is a package
    from .mailer_contract import Harness, MailerContract, mails, message, send_all
except ImportError:
    from mailer_contract import (  # type: ignore[no-redef]
        Harness,
        MailerContract,
        mails,
        message,
        send_all,
    )

_ERROR = (
    '<ErrorResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><Error><Type>{kind}</Type>'
    "<Code>{code}</Code><Message>{text}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"
)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class FakeSesFaults:
    """A ``before-send`` hook on one client: scripted SES errors per recipient, and a
    connection that drops once after n more sends."""

    def __init__(self) -> None:
        self.errors: dict[str, tuple[int, str, str]] = {}  # rcpt -> (http status, code, text)
        self.drop_after: int | None = None
        self.requests: list[dict[str, list[str]]] = []
        self._lock = threading.Lock()

    def install(self, client: Any) -> None:
        client.meta.events.register("before-send.ses.SendRawEmail", self)

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        form = parse_qs(body)
        rcpt = (form.get("Destinations.member.1") or [""])[0].lower()
        with self._lock:
            self.requests.append(form)
            if self.drop_after is not None:
                if self.drop_after == 0:
                    self.drop_after = None
                    raise ConnectionClosedError(endpoint_url=request.url)
                self.drop_after -= 1
            scripted = self.errors.get(rcpt)
        if scripted is None:
            return None
        status, code, text = scripted
        kind = "Receiver" if status >= 500 else "Sender"
        xml = _ERROR.format(kind=kind, code=code, text=text, rid=uuid.uuid4())
        return AWSResponse(request.url, status, {"Content-Type": "text/xml"}, _Raw(xml.encode()))


def ses_client(endpoint: str) -> Any:
    return boto3.client(
        "ses",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "max_attempts": 2}),
    )


def sent_by_moto(endpoint: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=30) as response:
        data = json.loads(response.read())
    return list(data.get("ses", {}).get("RawMessage", []))


class TestSesMailer(MailerContract):
    @pytest.fixture(autouse=True)
    def _endpoint(self, moto_endpoint: str) -> None:
        self.endpoint = moto_endpoint

    def harness(self, tmp_path: Path, *, connections: int) -> Iterator[Harness]:
        client = ses_client(self.endpoint)
        client.verify_domain_identity(Domain="example.com")
        faults = FakeSesFaults()
        faults.install(client)
        self.faults = faults
        before = {m["id"] for m in sent_by_moto(self.endpoint)}

        def received() -> list[tuple[str, list[str], bytes]]:
            # moto appends the To/Cc headers to the destinations; SES delivers to
            # Destinations only, which come first.
            return [
                (m["source"], [m["destinations"][0]], m["raw_data"].encode())
                for m in sent_by_moto(self.endpoint)
                if m["id"] not in before
            ]

        def script(rcpt: str, code: int, text: str) -> None:
            if code in (421, 454):
                faults.errors[rcpt.lower()] = (400, "Throttling", text)
            elif code >= 500:
                faults.errors[rcpt.lower()] = (400, "MessageRejected", text)
            else:
                faults.errors[rcpt.lower()] = (503, "ServiceUnavailable", text)

        def drop_once(n: int) -> None:
            faults.drop_after = n

        mailer = SesMailer(client=client, concurrency=connections)
        try:
            yield Harness(mailer=mailer, received=received, script=script, drop_once=drop_once)
        finally:
            mailer.close()

    # ------------------------------------------------------------ overrides

    def test_per_recipient_results(self, h: Harness) -> None:
        # SES has no per-recipient SMTP reply: a refusal is an API error.  Same shape as
        # the contract test, with SES's codes: MessageRejected -> 554, 5xx outage -> 451.
        h.script("gone@example.org", 550, "Email address is on the suppression list")
        h.script("later@example.org", 451, "Service unavailable")

        def rcpt(i: int) -> str:
            return {3: "gone@example.org", 5: "later@example.org"}.get(i, f"user{i}@example.org")

        results = send_all(h.mailer, mails(8, rcpt=rcpt))
        assert results[3].code == 554 and results[3].outcome == "failed"
        assert "MessageRejected" in results[3].reply and "suppression" in results[3].reply
        assert results[5].code == 451 and results[5].outcome == "deferred"
        assert all(results[i].outcome == "sent" for i in (0, 1, 2, 4, 6, 7))
        assert all(results[i].message_id for i in (0, 1, 2, 4, 6, 7))
        delivered = sorted(rcpts[0] for _, rcpts, _ in h.received())
        assert delivered == sorted(f"user{i}@example.org" for i in (0, 1, 2, 4, 6, 7))

    def test_throttle_reply_defers_only_that_mail(self, h: Harness) -> None:
        # SES says "Throttling" (HTTP 400) where SMTP says 421; it maps to 454.
        h.script("slow@example.org", 421, "Maximum sending rate exceeded.")
        results = send_all(
            h.mailer,
            mails(12, rcpt=lambda i: "slow@example.org" if i == 4 else f"user{i}@example.org"),
        )
        assert results[4].code == 454 and results[4].throttled
        assert all(results[i].code == 250 for i in range(12) if i != 4)
        assert len(h.received()) == 11

    # ------------------------------------------------------------ SES specifics

    def test_request_carries_source_destination_tags_and_configuration_set(
        self, moto_endpoint: str
    ) -> None:
        client = ses_client(moto_endpoint)
        client.verify_domain_identity(Domain="example.com")
        faults = FakeSesFaults()
        faults.install(client)
        data = (
            b"From: news@example.com\r\nX-Lunamail-Account: acme_1\r\n"
            b"X-Lunamail-Campaign:\r\n  cmp-42\r\nSubject: hi\r\n\r\nbody\r\n"
        )
        with SesMailer(client=client, configuration_set="lunamail-events") as mailer:
            results = send_all(mailer, [OutgoingMail("bounce+tok@example.com", "r@example.org", data, 1)])
        assert results[1].code == 250 and results[1].message_id
        [form] = faults.requests
        assert form["Source"] == ["bounce+tok@example.com"]
        assert form["Destinations.member.1"] == ["r@example.org"]
        assert form["ConfigurationSetName"] == ["lunamail-events"]
        tags = {
            form[f"Tags.member.{i}.Name"][0]: form[f"Tags.member.{i}.Value"][0] for i in (1, 2)
        }
        assert tags == {"lm_account": "acme_1", "lm_campaign": "cmp-42"}
        [got] = [m for m in sent_by_moto(moto_endpoint) if m["id"] == results[1].message_id]
        assert got["raw_data"].encode() == data

    def test_unverified_sender_is_rejected_by_ses(self, moto_endpoint: str) -> None:
        mailer = SesMailer(client=ses_client(moto_endpoint))
        try:
            results = send_all(
                mailer, [OutgoingMail("bounce@unverified.example", "r@example.org", message(1), 7)]
            )
        finally:
            mailer.close()
        assert results[7].code == 554 and results[7].outcome == "failed"
        assert "MessageRejected" in results[7].reply

    def test_malformed_recipient_fails_without_blocking_others(self, moto_endpoint: str) -> None:
        client = ses_client(moto_endpoint)
        client.verify_domain_identity(Domain="example.com")
        batch = mails(4, rcpt=lambda i: "not an address" if i == 2 else f"u{i}@example.org")
        with SesMailer(client=client) as mailer:
            results = send_all(mailer, batch)
        assert results[2].outcome == "failed" and results[2].code == 553
        assert [results[i].code for i in (0, 1, 3)] == [250, 250, 250]

    def test_unreachable_endpoint_defers(self) -> None:
        client = boto3.client(
            "ses",
            endpoint_url="http://127.0.0.1:9",
            region_name="us-east-1",
            config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=2),
        )
        with SesMailer(client=client, concurrency=2) as mailer:
            results = send_all(mailer, mails(3))
        assert sorted(results) == [0, 1, 2]
        assert all(r.code == 451 and r.outcome == "deferred" for r in results.values())

    def test_throttling_slows_the_pacer(self, moto_endpoint: str) -> None:
        client = ses_client(moto_endpoint)
        client.verify_domain_identity(Domain="example.com")
        faults = FakeSesFaults()
        faults.install(client)
        faults.errors["slow@example.org"] = (400, "Throttling", "Maximum sending rate exceeded.")
        pacer = LocalPacer(PaceConfig(rate=500))
        with SesMailer(client=client, pacer=pacer, concurrency=2) as mailer:
            results = send_all(
                mailer, mails(6, rcpt=lambda i: "slow@example.org" if i == 1 else f"u{i}@example.org")
            )
        assert results[1].code == 454
        assert pacer.current_rate() < 500


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"X-Lunamail-Campaign: c1\r\n\r\nX-Lunamail-Account: body", {"lm_campaign": "c1"}),
        (b"x-lunamail-account: a b\r\nX-Lunamail-Campaign: ok\r\n\r\n", {"lm_campaign": "ok"}),
        (b"Subject: none\r\n\r\n", {}),
        (b"X-Lunamail-Campaign: first\r\nX-Lunamail-Campaign: second\r\n\r\n", {"lm_campaign": "first"}),
    ],
)
def test_tags_from_headers(head: bytes, expected: dict[str, str]) -> None:
    assert tags_from_headers(head) == expected


def test_from_url() -> None:
    mailer = SesMailer.from_url(
        "ses://?region=eu-west-1&configuration_set=news&concurrency=3", region="us-east-1"
    )
    try:
        assert (mailer.configuration_set, mailer.concurrency) == ("news", 3)
        assert mailer._client.meta.region_name == "eu-west-1"
    finally:
        mailer.close()
    with pytest.raises(ValueError):
        SesMailer.from_url("ses://?bogus=1")
