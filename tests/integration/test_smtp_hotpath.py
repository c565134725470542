"""The send hot path end to end over real SMTP: hand-built MIME, DKIM, the pipelined
mailer, and the capture server writing .eml files."""

from __future__ import annotations

import email
import email.policy
import smtplib
import sys
from pathlib import Path

import dkim

from lunamail.adapters.mailer.smtp import SmtpMailer
from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.lib.dkim import DkimSigner, MultiSigner, generate_keys
from lunamail.lib.mime import CampaignMime, make_message_id
from lunamail.ports.mailer import OutgoingMail, SendResult

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from mailer_contract import make_tls_context


def test_mime_dkim_mailer_capture_files(tmp_path: Path) -> None:
    rpem, rtxt = generate_keys("rsa-sha256")
    epem, etxt = generate_keys("ed25519-sha256")
    signer = MultiSigner([DkimSigner("example.com", "r", rpem), DkimSigner("example.com", "e", epem, "ed25519-sha256")])
    records = {b"r._domainkey.example.com.": rtxt.encode(), b"e._domainkey.example.com.": etxt.encode()}
    mime = CampaignMime(from_email="news@example.com", from_name="Nëws", list_id="news.example.com")
    out = tmp_path / "outbox"
    mails = [
        OutgoingMail(
            mail_from=mime.return_path(f"c1.{i}"),
            rcpt_to=f"user{i}@example.org",
            data=signer.sign(
                mime.build(
                    to_email=f"user{i}@example.org",
                    to_name=f"Ünïcode {i}",
                    subject=f"Hello {i} ✓",
                    html=f"<p>Hi {i}</p>\n.\n",
                    text=f"Hi {i}\n.\n..\n",
                    unsubscribe_url=f"https://example.com/u/{i}",
                    message_id=make_message_id("example.com"),
                    date=1_700_000_000 + i,
                    return_path_token=f"c1.{i}",
                )
            ),
            ref=i,
        )
        for i in range(25)
    ]
    results: list[SendResult] = []
    with CaptureServer(out_dir=out) as server:
        with SmtpMailer.from_url(f"smtp://127.0.0.1:{server.port}", connections=2) as mailer:
            mailer.send(mails, results.append)
        assert server.count == 25
        assert server.messages == []  # written to files instead
    assert sorted(r.ref for r in results if r.code == 250) == list(range(25))
    files = sorted(out.glob("*.eml"))
    assert len(files) == 25
    by_subject = {}
    for f in files:
        raw = f.read_bytes()
        d = dkim.DKIM(raw)
        assert d.verify(0, dnsfunc=lambda n, timeout=5: records.get(n))
        assert d.verify(1, dnsfunc=lambda n, timeout=5: records.get(n))
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        by_subject[str(msg["Subject"])] = msg
    body = by_subject["Hello 7 ✓"].get_body(("plain",))
    assert body is not None and body.get_content() == "Hi 7\r\n.\r\n..\r\n"


def test_capture_server_with_stdlib_client_starttls_auth(tmp_path: Path) -> None:
    ctx = make_tls_context(tmp_path)
    with CaptureServer(tls_context=ctx, require_starttls=True, credentials={"u": "pw"}) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo()
            assert client.has_extn("pipelining") and client.has_extn("starttls")
            client.starttls()
            client.ehlo()
            client.login("u", "pw")
            refused = client.sendmail("a@example.com", ["b@example.org"], b"Subject: x\r\n\r\n.x\r\n")
            assert refused == {}
        assert server.messages == [("a@example.com", ["b@example.org"], b"Subject: x\r\n\r\n.x\r\n")]
        assert server.sessions == 1
