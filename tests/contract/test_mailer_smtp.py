"""SmtpMailer against the Mailer contract over real SMTP on 127.0.0.1 (plain, STARTTLS +
AUTH, implicit TLS + AUTH), plus what only an SMTP client can show."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunamail.adapters.mailer.smtp import SmtpMailer
from lunamail.adapters.pacer import LocalPacer
from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.lib.pacing import PaceConfig

try:  # works whether or not tests/contract is a package
    from .mailer_contract import Harness, MailerContract, mails, make_tls_context, send_all
except ImportError:
    from mailer_contract import (  # type: ignore[no-redef]
        Harness,
        MailerContract,
        mails,
        make_tls_context,
        send_all,
    )


def _harness(server: CaptureServer, mailer: SmtpMailer) -> Harness:
    def script(rcpt: str, code: int, text: str) -> None:
        server.fail[rcpt.lower()] = (code, text)

    def drop_once(n: int) -> None:
        server.drop_once_after = server.count + n

    return Harness(mailer=mailer, received=lambda: list(server.messages), script=script, drop_once=drop_once)


class TestSmtpMailerPlain(MailerContract):
    def harness(self, tmp_path: Path, *, connections: int) -> Iterator[Harness]:
        with CaptureServer() as server:
            mailer = SmtpMailer.from_url(f"smtp://127.0.0.1:{server.port}", connections=connections, timeout=10)
            try:
                yield _harness(server, mailer)
            finally:
                mailer.close()

    def test_connections_are_bounded_and_persistent(self) -> None:
        with CaptureServer() as server:
            mailer = SmtpMailer.from_url(f"smtp://127.0.0.1:{server.port}", connections=1)
            try:
                for k in range(3):
                    send_all(mailer, mails(20, start=20 * k))
            finally:
                mailer.close()
            assert server.count == 60
            assert server.sessions == 1

    def test_sends_from_several_threads_at_once(self) -> None:
        with CaptureServer() as server:
            mailer = SmtpMailer.from_url(f"smtp://127.0.0.1:{server.port}", connections=3)
            outcomes: list[dict[object, object]] = []

            def worker(k: int) -> None:
                outcomes.append({ref: r.code for ref, r in send_all(mailer, mails(30, start=100 * k)).items()})

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            mailer.close()
            assert sorted(len(o) for o in outcomes) == [30, 30, 30, 30]
            assert all(code == 250 for o in outcomes for code in o.values())
            assert server.count == 120
            assert server.sessions <= 3

    def test_unreachable_relay_gives_4xx_not_an_exception(self) -> None:
        with CaptureServer() as server:
            port = server.port
        mailer = SmtpMailer.from_url(f"smtp://127.0.0.1:{port}", connections=2, timeout=5)
        try:
            results = send_all(mailer, mails(5))
        finally:
            mailer.close()
        assert sorted(results) == list(range(5))
        assert all(r.outcome == "deferred" for r in results.values())

    def test_pacer_paces_and_hears_throttling(self) -> None:
        calls = {"reserve": 0, "throttled": 0}

        class Recording(LocalPacer):
            def reserve(self, n: int) -> tuple[float, float]:
                calls["reserve"] += 1
                return super().reserve(n)

            def throttled(self) -> None:
                calls["throttled"] += 1
                super().throttled()

        pacer = Recording(PaceConfig(rate=500))
        with CaptureServer(fail={"slow@example.org": (421, "4.7.0 slow down")}) as server:
            mailer = SmtpMailer.from_url(f"smtp://127.0.0.1:{server.port}", connections=2, pacer=pacer)
            try:
                results = send_all(mailer, mails(30, rcpt=lambda i: "slow@example.org" if i == 9 else f"u{i}@example.org"))
            finally:
                mailer.close()
        assert results[9].code == 421
        assert sum(r.code == 250 for r in results.values()) == 29
        assert calls["reserve"] >= 1
        assert calls["throttled"] >= 1
        assert pacer.current_rate() < 500


class TestSmtpMailerStartTlsAuth(MailerContract):
    def harness(self, tmp_path: Path, *, connections: int) -> Iterator[Harness]:
        ctx = make_tls_context(tmp_path)
        with CaptureServer(tls_context=ctx, require_starttls=True, credentials={"lu": "p@ss:w/rd"}) as server:
            url = f"smtp+starttls://lu:p%40ss%3Aw%2Frd@127.0.0.1:{server.port}?verify=false"
            mailer = SmtpMailer.from_url(url, connections=connections, timeout=10)
            try:
                yield _harness(server, mailer)
            finally:
                mailer.close()

    def test_wrong_password_defers_every_mail(self, tmp_path: Path) -> None:
        ctx = make_tls_context(tmp_path)
        with CaptureServer(tls_context=ctx, require_starttls=True, credentials={"lu": "right"}) as server:
            url = f"smtp+starttls://lu:wrong@127.0.0.1:{server.port}?verify=false"
            mailer = SmtpMailer.from_url(url, connections=1, timeout=10)
            try:
                results = send_all(mailer, mails(3))
            finally:
                mailer.close()
            assert all(r.outcome == "deferred" for r in results.values())
            assert "authentication failed" in results[0].reply
            assert server.count == 0

    def test_certificate_is_verified_by_default(self, tmp_path: Path) -> None:
        ctx = make_tls_context(tmp_path)
        with CaptureServer(tls_context=ctx, require_starttls=True) as server:
            mailer = SmtpMailer.from_url(f"smtp+starttls://127.0.0.1:{server.port}", connections=1, timeout=10)
            try:
                results = send_all(mailer, mails(2))
            finally:
                mailer.close()
            assert all(r.outcome == "deferred" for r in results.values())
            assert server.count == 0


def test_plain_smtp_upgrades_to_tls_when_the_relay_offers_it(tmp_path: Path) -> None:
    ctx = make_tls_context(tmp_path)
    # This relay refuses mail before STARTTLS: only an upgraded session gets through.
    with CaptureServer(tls_context=ctx, require_starttls=True) as server:
        mailer = SmtpMailer.from_url(f"smtp://127.0.0.1:{server.port}", connections=1, timeout=10,
                                     helo="news.example.org")
        try:
            results = send_all(mailer, mails(3))
        finally:
            mailer.close()
        assert all(r.code == 250 for r in results.values())
        assert server.count == 3
        assert server.helo_names and set(server.helo_names) == {"news.example.org"}
        off = SmtpMailer.from_url(f"smtp://127.0.0.1:{server.port}?tls=off", connections=1, timeout=10)
        try:
            refused = send_all(off, mails(2))
        finally:
            off.close()
        assert all(r.code != 250 for r in refused.values())
        assert server.count == 3


def test_required_tls_on_plain_smtp_refuses_a_relay_without_starttls() -> None:
    with CaptureServer() as server:
        mailer = SmtpMailer.from_url(f"smtp://127.0.0.1:{server.port}?tls=required", connections=1, timeout=10)
        try:
            results = send_all(mailer, mails(2))
        finally:
            mailer.close()
        assert all(r.outcome == "deferred" and "STARTTLS" in r.reply for r in results.values())
        assert server.count == 0
        # opportunistic (the default) sends in the clear to a relay that offers no TLS
        plain = SmtpMailer.from_url(f"smtp://127.0.0.1:{server.port}", connections=1, timeout=10)
        try:
            assert all(r.code == 250 for r in send_all(plain, mails(2)).values())
        finally:
            plain.close()


class TestSmtpMailerImplicitTlsAuth(MailerContract):
    def harness(self, tmp_path: Path, *, connections: int) -> Iterator[Harness]:
        ctx = make_tls_context(tmp_path)
        with CaptureServer(tls_context=ctx, implicit_tls=True, credentials={"lu": "secret"}) as server:
            url = f"smtps://lu:secret@127.0.0.1:{server.port}?verify=false"
            mailer = SmtpMailer.from_url(url, connections=connections, timeout=10)
            try:
                yield _harness(server, mailer)
            finally:
                mailer.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://relay.example", ("relay.example", 25, "plain", None, None, True)),
        ("smtp+starttls://u%40x:p%3Aw@relay.example", ("relay.example", 587, "starttls", "u@x", "p:w", True)),
        ("smtps://relay.example:2465?verify=false", ("relay.example", 2465, "tls", None, None, False)),
    ],
)
def test_from_url(url: str, expected: tuple[object, ...]) -> None:
    mailer = SmtpMailer.from_url(url, connections=1)
    try:
        s = mailer.settings
        assert (s.host, s.port, s.security, s.username, s.password, s.verify) == expected
    finally:
        mailer.close()


@pytest.mark.parametrize(
    ("url", "security", "tls"),
    [
        ("smtp://relay.example", "plain", "opportunistic"),
        ("smtp://relay.example?tls=off", "plain", "off"),
        ("smtp://relay.example?tls=required", "starttls", "required"),
        ("smtp+starttls://relay.example", "starttls", "required"),
    ],
)
def test_from_url_tls_modes(url: str, security: str, tls: str) -> None:
    mailer = SmtpMailer.from_url(url, connections=1)
    try:
        assert (mailer.settings.security, mailer.settings.tls) == (security, tls)
    finally:
        mailer.close()


@pytest.mark.parametrize("url", ["http://relay.example", "smtp://", "smtp://relay.example?bogus=1",
                                 "smtp://relay.example?tls=maybe", "smtps://relay.example?tls=off"])
def test_from_url_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        SmtpMailer.from_url(url)


def test_a_session_after_a_refused_recipient_starts_with_rset() -> None:
    """The last mail of one ``send`` refused at RCPT leaves the relay's transaction open: the
    next ``send`` on that connection must reset it (else the relay answers "503 nested
    MAIL" and an innocent recipient fails)."""
    first, second = mails(2)
    with CaptureServer(fail={first.rcpt_to: (452, "4.2.2 mailbox full")}) as server:
        mailer = SmtpMailer.from_url(f"smtp://127.0.0.1:{server.port}", connections=1, timeout=10)
        try:
            refused = send_all(mailer, [first])
            accepted = send_all(mailer, [second])
        finally:
            mailer.close()
        assert [r.code for r in refused.values()] == [452]
        assert [r.code for r in accepted.values()] == [250]
        assert server.sessions == 1 and server.count == 1
