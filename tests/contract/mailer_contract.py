"""The Mailer port's contract: every adapter passes these tests unchanged.

An adapter's test module subclasses :class:`MailerContract` and implements
:meth:`harness`, which yields a :class:`Harness`: the mailer plus a view of what the
"relay" received and a way to script its replies.  SMTP adapters run against the
built-in capture server on 127.0.0.1; the memory mailer is its own relay.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lunamail.ports.mailer import Mailer, OutgoingMail, SendResult


@dataclass
class Harness:
    mailer: Mailer
    received: Callable[[], list[tuple[str, list[str], bytes]]]  # what the relay accepted
    script: Callable[[str, int, str], None]  # make the relay answer (code, text) for a recipient
    drop_once: Callable[[int], None]  # drop the connection after n more messages (no-op if none)


def make_tls_context(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1/localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def message(i: int, body: bytes = b"") -> bytes:
    return (
        f"From: news@example.com\r\nTo: user{i}@example.org\r\nSubject: message {i}\r\n"
        f"Message-ID: <{i}@example.com>\r\n\r\n"
    ).encode() + (body or f"Hello {i}\r\n".encode())


def mails(n: int, *, start: int = 0, rcpt: Callable[[int], str] | None = None) -> list[OutgoingMail]:
    return [
        OutgoingMail(
            mail_from=f"bounce+{i}@example.com",
            rcpt_to=rcpt(i) if rcpt else f"user{i}@example.org",
            data=message(i),
            ref=i,
        )
        for i in range(start, start + n)
    ]


def send_all(mailer: Mailer, batch: list[OutgoingMail]) -> dict[Any, SendResult]:
    results: list[SendResult] = []
    lock = threading.Lock()

    def on_result(r: SendResult) -> None:
        with lock:
            results.append(r)

    mailer.send(iter(batch), on_result)
    refs = [r.ref for r in results]
    assert len(refs) == len(set(refs)), "a mail got more than one result"
    return {r.ref: r for r in results}


class MailerContract(ABC):
    """Subclass as ``TestXxxMailer`` and implement :meth:`harness`."""

    @abstractmethod
    def harness(self, tmp_path: Path, *, connections: int) -> Iterator[Harness]:
        """Yield a fresh mailer and relay; clean both up after the yield."""

    @pytest.fixture
    def h(self, tmp_path: Path) -> Iterator[Harness]:
        yield from self.harness(tmp_path, connections=2)

    def test_many_messages_over_few_connections_arrive_intact(self, h: Harness) -> None:
        batch = mails(150)
        results = send_all(h.mailer, batch)
        assert sorted(results) == list(range(150))
        assert {r.outcome for r in results.values()} == {"sent"}
        got = {rcpts[0]: (frm, data) for frm, rcpts, data in h.received()}
        assert len(got) == 150
        for m in batch:
            assert got[m.rcpt_to] == (m.mail_from, m.data)

    def test_mailer_is_reused_across_send_calls(self, h: Harness) -> None:
        for k in range(3):
            results = send_all(h.mailer, mails(10, start=k * 10))
            assert all(r.code == 250 for r in results.values())
        assert len(h.received()) == 30

    def test_empty_input_returns_without_results(self, h: Harness) -> None:
        assert send_all(h.mailer, []) == {}

    def test_per_recipient_results(self, h: Harness) -> None:
        h.script("gone@example.org", 550, "5.1.1 no such user")
        h.script("full@example.org", 452, "4.2.2 mailbox full")

        def rcpt(i: int) -> str:
            return {3: "gone@example.org", 5: "full@example.org"}.get(i, f"user{i}@example.org")

        results = send_all(h.mailer, mails(8, rcpt=rcpt))
        assert results[3].code == 550 and results[3].outcome == "failed"
        assert results[5].code == 452 and results[5].outcome == "deferred"
        assert "mailbox full" in results[5].reply
        assert all(results[i].outcome == "sent" for i in (0, 1, 2, 4, 6, 7))
        assert results[3].rcpt_to == "gone@example.org"
        delivered = sorted(rcpts[0] for _, rcpts, _ in h.received())
        assert delivered == sorted(f"user{i}@example.org" for i in (0, 1, 2, 4, 6, 7))

    def test_throttle_reply_defers_only_that_mail(self, h: Harness) -> None:
        h.script("slow@example.org", 421, "4.7.0 too many messages, slow down")
        results = send_all(h.mailer, mails(12, rcpt=lambda i: "slow@example.org" if i == 4 else f"user{i}@example.org"))
        assert results[4].code == 421 and results[4].throttled
        assert all(results[i].code == 250 for i in range(12) if i != 4)
        assert len(h.received()) == 11

    def test_dropped_connection_loses_nothing(self, h: Harness) -> None:
        h.drop_once(5)
        results = send_all(h.mailer, mails(20))
        assert all(r.code == 250 for r in results.values()), results
        assert sorted(rcpts[0] for _, rcpts, _ in h.received()) == sorted(
            f"user{i}@example.org" for i in range(20)
        )

    def test_leading_dots_and_line_starts_arrive_intact(self, h: Harness) -> None:
        body = b".\r\n..\r\n.leading dot\r\nFrom the start\r\n. \r\n...\r\nend\r\n"
        data = message(1, body)
        dot_first = b".starts with a dot\r\n" + data
        results = send_all(
            h.mailer,
            [
                OutgoingMail("b@example.com", "a@example.org", data, "a"),
                OutgoingMail("b@example.com", "c@example.org", dot_first, "c"),
            ],
        )
        assert all(r.code == 250 for r in results.values())
        got = {rcpts[0]: d for _, rcpts, d in h.received()}
        assert got["a@example.org"] == data
        assert got["c@example.org"] == dot_first

    def test_large_message(self, h: Harness) -> None:
        body = b"".join(b"%07d " % i + b"x" * 68 + b"\r\n" for i in range(40_000))  # ~3 MB
        data = message(7, body)
        results = send_all(h.mailer, [OutgoingMail("b@example.com", "big@example.org", data, 1)])
        assert results[1].code == 250
        assert [d for _, _, d in h.received()] == [data]
