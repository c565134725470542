"""One receiving domain refuses the sender (DMARC, 5.7.26) over real SMTP: the guard
pauses the campaign with that reason, and no recipient of that domain is suppressed."""

from __future__ import annotations

from pathlib import Path

from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from lunamail.services.reports import api as reports

ACCOUNT = "default"
DMARC = "5.7.26 Unauthenticated email from sender.example.org is not accepted due to domain's DMARC policy"
# Pages are planned in address order: the refused domain's recipients go out first.
REFUSED = [f"a{i:03d}@gmail.com" for i in range(40)]
OTHERS = [f"z{i:03d}@example.net" for i in range(60)]


def test_a_domain_refusing_the_sender_pauses_the_campaign_and_suppresses_nobody(tmp_path: Path) -> None:
    fail = {email: (550, DMARC) for email in REFUSED}
    with CaptureServer("127.0.0.1", 0, fail=fail) as sink, bootstrap_in(
        tmp_path / "data",
        settings_overrides={"smtp_url": f"smtp://127.0.0.1:{sink.port}", "base_url": "http://testserver",
                            "batch_size": 10, "page_size": 20},
    ) as system:
        deps = system.deps
        lst = str(audience.create_list(deps, ACCOUNT, "People")["id"])
        for email in REFUSED + OTHERS:
            audience.subscribe(deps, ACCOUNT, lst, email)
        camp = campaigns.create_draft(
            deps, ACCOUNT, name="Refused", subject="Hello", from_email="news@sender.example.org",
            html='<p>Hi</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>', lists=[lst])
        system.bus.publish([campaigns.send_now(deps, ACCOUNT, camp.id, audience_size=100)])
        assert system.run_until(
            lambda: campaigns.get(deps, ACCOUNT, camp.id).status.value == "paused", timeout=90)
        paused = campaigns.get(deps, ACCOUNT, camp.id)
        assert "gmail.com rejected" in paused.reason and "5.7.26" in paused.reason, paused.reason
        assert "no recipient was suppressed" in paused.reason
        system.runtime().run_until_idle(timeout=30)

        for email in REFUSED:
            assert not audience.is_suppressed(deps, ACCOUNT, email), email
            assert audience.get_subscriber(deps, ACCOUNT, lst, email)["status"] == "subscribed"
        assert campaigns.get(deps, ACCOUNT, camp.id).status.value == "paused"
        rep = reports.campaign_report(deps, ACCOUNT, camp.id)
        assert rep["bounced"]["hard"] == 0
