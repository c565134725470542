"""The whole feedback loop, end to end.

A campaign goes out over real SMTP.  Then a script acts for chosen recipients:
opens (one of them by a mail-privacy proxy), clicks, a one-click unsubscribe,
SES bounce and complaint notifications over signed SNS, and raw DSN and ARF
reports fed through ingest.  The report must show exactly those counts, the
subscribers' statuses must change, and a second campaign to the same list
must skip every address that opted out, bounced or complained.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.entrypoints.http.app import create_app
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from lunamail.services.feedback.ingest import store_raw
from lunamail.services.feedback.sns import SnsVerifier
from lunamail.services.reports import api as reports

ACCOUNT = "default"
TOPIC = "arn:aws:sns:us-east-1:123456789012:lunamail-feedback"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
HTML = ('<p>Hi {{ subscriber.name }}</p><p><a href="https://example.com/one">One</a> '
        '<a href="https://example.com/two">Two</a></p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')
N = 40


def _email(i: int) -> str:
    return f"p{i:03d}@example.net"


# ------------------------------------------------------------------ SNS signing


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(KEY, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _sns(message: dict[str, Any]) -> dict[str, Any]:
    payload = {
        "Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC,
        "Message": json.dumps(message),
        "Timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "SignatureVersion": "2", "SigningCertURL": CERT_URL,
    }
    text = "".join(f"{k}\n{payload[k]}\n" for k in ("Message", "MessageId", "Timestamp", "TopicArn", "Type"))
    payload["Signature"] = base64.b64encode(KEY.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    return payload


def _ses(kind: str, email: str, campaign: str) -> dict[str, Any]:
    mail = {"timestamp": "2026-11-23T09:00:00.000Z", "source": "news@sender.example.org",
            "messageId": str(uuid.uuid4()), "destination": [email],
            "tags": {"lm_account": [ACCOUNT], "lm_campaign": [campaign]}}
    if kind == "Bounce":
        return {"notificationType": "Bounce", "mail": mail, "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General", "timestamp": mail["timestamp"],
            "bouncedRecipients": [{"emailAddress": email, "action": "failed", "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}}
    return {"notificationType": "Complaint", "mail": mail, "complaint": {
        "complainedRecipients": [{"emailAddress": email}], "complaintFeedbackType": "abuse",
        "timestamp": mail["timestamp"]}}


# ------------------------------------------------------------------ raw reports


def _dsn(verp: str, email: str) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: {verp}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n"
        "--b1\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {email}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--b1--\r\n"
    ).encode()


def _arf(original_headers: bytes, email: str) -> bytes:
    return (
        "From: feedback@isp.example.com\r\nTo: abuse@sender.example.org\r\nSubject: Complaint\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=feedback-report; boundary=\"b2\"\r\n\r\n"
        "--b2\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "--b2\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: test/1.0\r\n"
        f"Version: 1\r\nOriginal-Rcpt-To: {email}\r\n\r\n"
        "--b2\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ).encode() + original_headers + b"\r\n--b2--\r\n"


# ------------------------------------------------------------------ the test


def _send(system: System, sink: CaptureServer, list_id: str, name: str) -> tuple[str, dict[str, bytes], dict[str, str]]:
    before = len(sink.messages)
    camp = campaigns.create_draft(system.deps, ACCOUNT, name=name, subject="Hello {{ subscriber.name }}",
                                  from_name="News", from_email="news@sender.example.org", html=HTML,
                                  lists=[list_id])
    size = int(audience.count_by_status(system.deps, ACCOUNT, list_id)["subscribed"])
    system.bus.publish([campaigns.send_now(system.deps, ACCOUNT, camp.id, audience_size=size)])
    assert system.run_until(lambda: reports.campaign_report(system.deps, ACCOUNT, camp.id)["status"] == "sent",
                            timeout=120)
    assert sink.wait_for(before + size, timeout=10)
    by_rcpt = {rcpts[0]: data for _, rcpts, data in sink.messages[before:]}
    verps = {rcpts[0]: mail_from for mail_from, rcpts, _ in sink.messages[before:]}
    return camp.id, by_rcpt, verps


def _path(data: bytes, pattern: bytes) -> str:
    found = re.search(pattern, data.replace(b"=\r\n", b"").replace(b"=3D", b"="))
    assert found, pattern
    return found.group(1).decode()


def test_feedback_reaches_reports_lists_and_the_next_send(tmp_path: Path) -> None:
    with CaptureServer("127.0.0.1", 0) as sink, bootstrap_in(
        tmp_path / "data",
        settings_overrides={"smtp_url": f"smtp://127.0.0.1:{sink.port}", "base_url": "http://testserver",
                            "bot_click_window_seconds": 0.0},
    ) as system:
        lst = str(audience.create_list(system.deps, ACCOUNT, "People")["id"])
        for i in range(N):
            audience.subscribe(system.deps, ACCOUNT, lst, _email(i), name=f"Person {i}")
        camp, mails, verps = _send(system, sink, lst, "First")
        assert len(mails) == N

        pem = _cert()
        app = create_app(system, sns_verifier=SnsVerifier(lambda url: pem, accept_topic=lambda arn: arn == TOPIC))
        web = TestClient(app)

        def pixel(i: int) -> str:
            return _path(mails[_email(i)], rb'src="http://testserver(/o/[^"]+)"')

        def click(i: int, n: int) -> str:
            return re.findall(rb'href="http://testserver(/c/[^"]+)"',
                              mails[_email(i)].replace(b"=\r\n", b"").replace(b"=3D", b"="))[n].decode()

        # opens: p0 twice, p1, p2 by people; p3 through Gmail's image proxy (a machine)
        for i in (0, 0, 1, 2):
            assert web.get(pixel(i), headers={"User-Agent": BROWSER}).status_code == 200
        assert web.get(pixel(3), headers={"User-Agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"}).status_code == 200
        # clicks: p0 on link 0, p1 on link 1
        for i, n in ((0, 0), (1, 1)):
            r = web.get(click(i, n), headers={"User-Agent": BROWSER}, follow_redirects=False)
            assert r.status_code in (302, 303, 307) and r.headers["location"].startswith("https://example.com/")
        # a tampered click token never redirects
        assert web.get(click(0, 0)[:-3] + "AAA", follow_redirects=False).status_code == 404
        # p4 unsubscribes with one click (RFC 8058)
        unsub = _path(mails[_email(4)], rb"List-Unsubscribe: <http://testserver(/u/[^>]+)>")
        r = web.post(unsub, content=b"List-Unsubscribe=One-Click",
                     headers={"Content-Type": "application/x-www-form-urlencoded"}, follow_redirects=False)
        assert r.status_code == 200 and "set-cookie" not in r.headers
        # SES: p5 hard-bounces, p6 complains (signed SNS); a forged one is refused
        for kind, i in (("Bounce", 5), ("Complaint", 6)):
            assert web.post(f"/feedback/ses/{ACCOUNT}", content=json.dumps(_sns(_ses(kind, _email(i), camp)))).status_code == 200
        forged = _sns(_ses("Bounce", _email(9), camp))
        forged["Message"] = forged["Message"].replace(_email(9), _email(10))
        assert web.post(f"/feedback/ses/{ACCOUNT}", content=json.dumps(forged)).status_code == 403
        # raw reports: a DSN for p7 (to its VERP address), an ARF complaint quoting p8's headers
        head8 = mails[_email(8)].split(b"\r\n\r\n", 1)[0]
        system.bus.publish([
            store_raw(system.deps, ACCOUNT, _dsn(verps[_email(7)], _email(7)), verps[_email(7)]),
            store_raw(system.deps, ACCOUNT, _arf(head8, _email(8))),
        ])
        system.runtime().run_until_idle(timeout=60)

        rep = reports.campaign_report(system.deps, ACCOUNT, camp)
        assert rep["opened"] == {"unique": 3, "total": 4, "machine": 1} | {
            k: v for k, v in rep["opened"].items() if k not in ("unique", "total", "machine")}
        assert (rep["clicked"]["unique"], rep["clicked"]["total"]) == (2, 2)
        assert rep["unsubscribed"] == 1
        assert rep["bounced"]["hard"] == 2
        assert rep["complained"] == 2
        assert rep["sent"] == N

        status = {i: audience.get_subscriber(system.deps, ACCOUNT, lst, _email(i))["status"] for i in range(N)}
        assert status[4] == "unsubscribed"
        assert status[5] == status[7] == "bounced"
        assert status[6] == status[8] == "complained"
        assert [i for i, s in status.items() if s != "subscribed"] == [4, 5, 6, 7, 8]
        for i in (5, 6, 7, 8):
            assert audience.is_suppressed(system.deps, ACCOUNT, _email(i))
        assert not audience.is_suppressed(system.deps, ACCOUNT, _email(9))

        # non-openers: sent, minus human openers/clickers and everyone who opted out or bounced;
        # p3 opened only through an image proxy, so they still count as a non-opener
        non_openers = {r["email"] for r in reports.export_recipients(system.deps, ACCOUNT, camp, "non-openers")}
        assert non_openers == {_email(i) for i in range(N)} - {_email(i) for i in (0, 1, 2, 4, 5, 6, 7, 8)}

        # the next campaign to the same list skips every one of them
        _, second, _ = _send(system, sink, lst, "Second")
        assert set(second) == {_email(i) for i in range(N)} - {_email(i) for i in (4, 5, 6, 7, 8)}

        # List-Id names the list, so it is the same in both campaigns (RFC 2919)
        def list_id(data: bytes) -> bytes:
            found = re.search(rb"\r\nList-Id: ([^\r\n]+)", data)
            assert found
            return found.group(1)

        assert {list_id(d) for d in mails.values()} == {list_id(d) for d in second.values()} == {
            f"<{lst}.{ACCOUNT}.sender.example.org>".encode()}
