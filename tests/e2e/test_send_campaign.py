"""A 10,000-recipient campaign through the real runtime to a real SMTP server on loopback."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.campaigns import api as campaigns
from lunamail.services.reports import api as reports
from tests.e2e.campaign_support import ACCOUNT, check_messages, make_audience, make_campaign

RECIPIENTS = 10_000


def test_every_subscribed_recipient_gets_exactly_one_personal_message(tmp_path: Path) -> None:
    with CaptureServer("127.0.0.1", 0) as sink, bootstrap_in(
        tmp_path / "data",
        settings_overrides={"smtp_url": f"smtp://127.0.0.1:{sink.port}", "batch_size": 250,
                            "page_size": 1000, "smtp_connections": 4},
    ) as system:
        aud = make_audience(system, RECIPIENTS, tmp_path)
        camp = make_campaign(system, aud.list_id)
        started = campaigns.send_now(system.deps, ACCOUNT, camp, audience_size=len(aud.expected))
        system.bus.publish([started])

        def sent() -> bool:
            return reports.campaign_report(system.deps, ACCOUNT, camp)["status"] == "sent"

        assert system.run_until(sent, timeout=600), reports.campaign_report(system.deps, ACCOUNT, camp)
        report = reports.campaign_report(system.deps, ACCOUNT, camp)
        assert sink.wait_for(len(aud.expected), timeout=30)
        counts, problems = check_messages(system.secrets, camp, aud, sink.messages)

        assert problems == []
        assert set(counts) == aud.expected
        assert [e for e, n in counts.items() if n != 1] == []
        assert not (aud.excluded & set(counts))
        assert report["planned"] == len(aud.expected)
        assert report["sent"] == len(aud.expected)
        assert report["failed"] == 0 and report["deferred"] == 0
        assert campaigns.get(system.deps, ACCOUNT, camp).status == "sent"

        # A sample parsed by the stdlib parser: no defects, both parts, RFC 8058 headers.
        for _, rcpts, data in sink.messages[:: len(sink.messages) // 50]:
            msg = email.message_from_bytes(data, policy=email.policy.default)
            assert not msg.defects
            assert all(not p.defects for p in msg.walk())
            assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert msg["List-Unsubscribe"].startswith("<http")
            assert msg["Message-ID"] and msg["Date"] and msg["List-Id"]
            assert msg.get_content_type() == "multipart/alternative"
            text = msg.get_body(("plain",))
            html = msg.get_body(("html",))
            assert text is not None and html is not None
            assert "Unsubscribe" in html.get_content()
            assert rcpts[0] in str(msg["To"])
