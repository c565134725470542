"""A short, honest newsletter sent with default tracking is not spam to SpamAssassin's stock
rules (Debian's package, offline: ``-L`` runs local tests only).  The open pixel used to
cost +2.1 (``HTML_IMAGE_ONLY_20``) on its own; see ``lib.tracklinks.insert_pixel``."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from lunamail.services.reports import api as reports

ACCOUNT = "default"
HTML = """<html><body>
<h1>The Riverside Garden Club, November letter</h1>
<p>Hello {{ subscriber.name }},</p>
<p>Thank you to everyone who came to the autumn planting day. Forty of us put three hundred
tulip and daffodil bulbs into the beds along the river path, and the children's corner now has
its own small herb garden with mint, thyme and chives. The photos are on our website.</p>
<p>Our next meeting is on Thursday the 19th at seven in the library hall. Maria will talk about
keeping roses healthy through a wet winter, and there will be tea and the usual seed swap table.
Bring any spare seeds in labelled envelopes.</p>
<p>The committee is also looking for two volunteers to help with watering the community beds
next spring. If you can spare an hour a week, reply to this email or speak to Tom at the meeting.</p>
<p>You can read <a href="https://gardenclub.example.org/news/november">the full newsletter on our website</a>.</p>
<p>Happy gardening,<br>Anna, for the committee</p>
<p style="font-size:12px">You receive this because you joined the Riverside Garden Club list.
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""


def _score(message: bytes) -> tuple[float, str]:
    out = subprocess.run(["spamassassin", "-L", "-t"], input=message, capture_output=True, timeout=120,
                         check=True).stdout.decode("utf-8", "replace")
    found = re.search(r"Content analysis details:\s+\((-?[\d.]+) points", out)
    assert found, out[-2000:]
    return float(found.group(1)), out.rsplit("Content analysis details:", 1)[1]


def test_a_short_newsletter_with_default_tracking_scores_at_most_one(tmp_path: Path) -> None:
    words = len(re.sub(r"<[^>]+>", " ", HTML).split())
    assert 130 <= words <= 180, words
    with CaptureServer("127.0.0.1", 0) as sink, bootstrap_in(
        tmp_path / "data",
        settings_overrides={"smtp_url": f"smtp://127.0.0.1:{sink.port}",
                            "base_url": "https://news.gardenclub.example.org"},
    ) as system:
        deps = system.deps
        lst = str(audience.create_list(deps, ACCOUNT, "Members")["id"])
        audience.subscribe(deps, ACCOUNT, lst, "jane.doe@example.net", name="Jane")
        camp = campaigns.create_draft(
            deps, ACCOUNT, name="November", subject="November news from the garden club",
            from_name="Riverside Garden Club", from_email="news@gardenclub.example.org", html=HTML, lists=[lst])
        system.bus.publish([campaigns.send_now(deps, ACCOUNT, camp.id, audience_size=1)])
        assert system.run_until(
            lambda: reports.campaign_report(deps, ACCOUNT, camp.id)["status"] == "sent", timeout=60)
        assert sink.wait_for(1)
        message = sink.messages[0][2]
    flat = message.replace(b"=\r\n", b"").replace(b"=3D", b"=")
    assert b"https://news.gardenclub.example.org/o/" in flat  # the open pixel is there (default tracking)
    assert b"https://news.gardenclub.example.org/c/" in flat  # and clicks are tracked
    score, details = _score(message)
    print(f"\nSpamAssassin score with default tracking: {score}\n{details}")
    assert score <= 1.0, details
    assert "HTML_IMAGE_ONLY" not in details
