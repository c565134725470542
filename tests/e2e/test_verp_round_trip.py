"""The return path over real SMTP: at most 64 octets in its local part even for the
longest account and campaign ids, and a bounce to it maps back to both."""

from __future__ import annotations

from pathlib import Path

from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from lunamail.services.feedback.ingest import store_raw
from lunamail.services.reports import api as reports

ACCOUNT = ("a" + "-long-account-id" * 4)[:63]  # 63 characters, the most allowed
CAMPAIGN = "c" * 20 + "-campaign-id-of-the-longest-kind-" + "9" * 11  # 64 characters
PEOPLE = ["ann@example.net", "a.rather.long.local.part.for.sure@subdomain.example.org", "bo@example.com"]


def _dsn(return_path: str, email: str) -> bytes:
    """A bounce quoting none of the original's headers: only the envelope maps it."""
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: {return_path}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r1"\r\n\r\n'
        "--r1\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver your message.\r\n"
        "--r1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {email}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <" + email + ">: Recipient address rejected\r\n\r\n--r1--\r\n"
    ).encode()


def test_long_ids_fit_and_a_bounce_maps_back(tmp_path: Path) -> None:
    assert len(ACCOUNT) == 63 and len(CAMPAIGN) == 64
    with CaptureServer("127.0.0.1", 0) as sink, bootstrap_in(
        tmp_path / "data",
        settings_overrides={"smtp_url": f"smtp://127.0.0.1:{sink.port}", "base_url": "http://testserver"},
    ) as system:
        deps = system.deps
        accounts.create_account(deps, "Long", account_id=ACCOUNT)
        lst = str(audience.create_list(deps, ACCOUNT, "People")["id"])
        for email in PEOPLE:
            audience.subscribe(deps, ACCOUNT, lst, email)
        camp = campaigns.create_draft(
            deps, ACCOUNT, name="Long ids", subject="Hello", from_email="news@sender.example.org",
            html='<p>Hi</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>', lists=[lst],
            campaign_id=CAMPAIGN,
        )
        system.bus.publish([campaigns.send_now(deps, ACCOUNT, camp.id, audience_size=len(PEOPLE))])
        assert system.run_until(
            lambda: reports.campaign_report(deps, ACCOUNT, CAMPAIGN)["status"] == "sent", timeout=60)
        assert sink.wait_for(len(PEOPLE), timeout=10)
        envelopes = {rcpts[0]: mail_from for mail_from, rcpts, _ in sink.messages}
        for _, _, data in sink.messages:
            head = data.split(b"\r\n\r\n", 1)[0]
            # List-Id names the list; Feedback-ID is campaign:list:account:sender
            assert f"\r\nList-Id: <{lst}.{ACCOUNT}.sender.example.org>\r\n".encode() in head
            assert f"\r\nFeedback-ID: {CAMPAIGN}:{lst}:{ACCOUNT}:lunamail\r\n".encode() in head
        assert set(envelopes) == set(PEOPLE)
        for mail_from in envelopes.values():
            local, _, domain = mail_from.rpartition("@")
            assert len(local.encode("ascii")) <= 64, mail_from
            assert domain == "sender.example.org"
        assert len(set(envelopes.values())) == len(PEOPLE)

        # Bounces for two of them, each to its own return path (one upper-cased by a relay).
        gone = PEOPLE[1]
        system.bus.publish([
            store_raw(deps, ACCOUNT, _dsn(envelopes[gone], gone), envelopes[gone]),
            store_raw(deps, ACCOUNT, _dsn(envelopes[PEOPLE[2]].upper(), PEOPLE[2]), envelopes[PEOPLE[2]].upper()),
        ])
        system.runtime().run_until_idle(timeout=60)
        rep = reports.campaign_report(deps, ACCOUNT, CAMPAIGN)
        assert rep["bounced"]["hard"] == 2
        status = {e: audience.get_subscriber(deps, ACCOUNT, lst, e)["status"] for e in PEOPLE}
        assert status == {PEOPLE[0]: "subscribed", gone: "bounced", PEOPLE[2]: "bounced"}
