"""Per-campaign switches for open and click tracking (defaults from the settings), the
campaign's own extra headers, and the pre-send summary that says what a send tracks."""

from __future__ import annotations

from pathlib import Path

import dkim
import pytest

from lunamail.app import campaigns as app
from lunamail.app.base import Env
from lunamail.config import DkimKey
from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.lib.dkim import generate_keys
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from lunamail.services.campaigns.errors import InvalidInput
from lunamail.services.reports import api as reports

ACCOUNT = "default"
HTML = '<p>Hi</p><p><a href="https://example.com/a">A link</a></p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'


def _flat(data: bytes) -> bytes:
    return data.replace(b"=\r\n", b"").replace(b"=3D", b"=")


@pytest.mark.parametrize(("opens", "clicks"), [(None, None), (False, True), (True, False)])
def test_tracking_follows_the_campaign_then_the_default(tmp_path: Path, opens: bool | None,
                                                         clicks: bool | None) -> None:
    with CaptureServer("127.0.0.1", 0) as sink, bootstrap_in(
        tmp_path / "data",
        settings_overrides={"smtp_url": f"smtp://127.0.0.1:{sink.port}", "base_url": "http://t.example",
                            "track_clicks": False},  # the installation's default: no click tracking
    ) as system:
        deps = system.deps
        lst = str(audience.create_list(deps, ACCOUNT, "People")["id"])
        audience.subscribe(deps, ACCOUNT, lst, "ann@example.net")
        env = Env(deps, system.bus.publish)
        camp = campaigns.create_draft(deps, ACCOUNT, name="T", subject="Hello", from_email="news@sender.example.org",
                                      html=HTML, lists=[lst], track_opens=opens, track_clicks=clicks,
                                      headers={"X-Campaign-Tag": "spring"})
        want = {"opens": True if opens is None else opens, "clicks": False if clicks is None else clicks}
        assert app.tracking_of(env, camp) == want
        system.bus.publish([campaigns.send_now(deps, ACCOUNT, camp.id, audience_size=1)])
        assert system.run_until(lambda: reports.campaign_report(deps, ACCOUNT, camp.id)["status"] == "sent",
                                timeout=60)
        assert sink.wait_for(1)
        data = _flat(sink.messages[0][2])
        assert (b"http://t.example/o/" in data) == want["opens"]
        assert (b"http://t.example/c/" in data) == want["clicks"]
        assert (b'href="https://example.com/a"' in data) == (not want["clicks"])
        assert b"\r\nX-Campaign-Tag: spring\r\n" in data.split(b"\r\n\r\n", 1)[0]


def test_reserved_or_multi_line_headers_are_refused(tmp_path: Path) -> None:
    with bootstrap_in(tmp_path / "data") as system:
        for bad in ({"List-Unsubscribe": "<https://evil.example>"}, {"X-Tag": "a\r\nBcc: x@example.com"}):
            with pytest.raises(InvalidInput) as err:
                campaigns.create_draft(system.deps, ACCOUNT, name="T", html=HTML, headers=bad)
            assert "headers" in err.value.fields


def test_the_send_summary_warns_when_mail_goes_out_unsigned_and_a_parent_key_signs(tmp_path: Path) -> None:
    pem, txt = generate_keys("rsa-sha256")
    keyfile = tmp_path / "k.pem"
    keyfile.write_bytes(pem)
    with CaptureServer("127.0.0.1", 0) as sink, bootstrap_in(
        tmp_path / "data",
        settings_overrides={"smtp_url": f"smtp://127.0.0.1:{sink.port}", "base_url": "http://t.example",
                            "dkim": (DkimKey("sender.example.org", "s1", str(keyfile)),),
                            "unsigned_sending": True},  # the installation sends unsigned where it has no key
    ) as system:
        deps = system.deps
        env = Env(deps, system.bus.publish)
        lst = str(audience.create_list(deps, ACCOUNT, "People")["id"])
        audience.subscribe(deps, ACCOUNT, lst, "ann@example.net")
        unsigned = campaigns.create_draft(deps, ACCOUNT, name="U", subject="Hi", from_email="news@other.example",
                                          html=HTML, lists=[lst])
        [warning] = app.send_warnings(env, unsigned)
        assert "other.example is not a sending domain" in warning and "go out unsigned" in warning
        sub = campaigns.create_draft(deps, ACCOUNT, name="S", subject="Hi",
                                     from_email="news@news.sender.example.org", html=HTML, lists=[lst])
        assert app.send_warnings(env, sub) == ()
        system.bus.publish([campaigns.send_now(deps, ACCOUNT, sub.id, audience_size=1)])
        assert system.run_until(lambda: reports.campaign_report(deps, ACCOUNT, sub.id)["status"] == "sent",
                                timeout=60)
        assert sink.wait_for(1)
        data = sink.messages[0][2]
    assert b"d=sender.example.org;" in data.split(b"\r\n\r\n", 1)[0]

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return txt.encode() if name == b"s1._domainkey.sender.example.org." else None

    assert dkim.verify(data, dnsfunc=dns)  # verified by dkimpy with the published record
