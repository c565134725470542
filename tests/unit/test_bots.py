"""The machine-open/click classifier, one table row per rule, plus people who must stay human."""

from __future__ import annotations

from typing import Literal

import pytest

from lunamail.lib import bots
from lunamail.lib.bots import classify

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
CUBOT_PHONE = (
    "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
EDGE = CHROME + " Edg/124.0.2478.51"
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17425; Pro)"
APPLE_MAIL = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"

Kind = Literal["open", "click"]

# (user agent, ip, method, seconds since send, kind, headers) -> (machine, reason)
MACHINE: list[tuple[str, str, str, float | None, Kind, dict[str, str], str]] = [
    (CHROME, "1.2.3.4", "HEAD", 3600, "click", {}, "head-request"),
    (CHROME, "1.2.3.4", "head", 3600, "open", {}, "head-request"),
    (CHROME, "1.2.3.4", "GET", 3600, "click", {"Purpose": "prefetch"}, "prefetch"),
    (CHROME, "1.2.3.4", "GET", 3600, "click", {"sec-purpose": "prefetch"}, "prefetch"),
    (CHROME, "1.2.3.4", "GET", 3600, "open", {"X-Moz": "prefetch"}, "prefetch"),
    ("", "1.2.3.4", "GET", 3600, "open", {}, "empty-user-agent"),
    ("   ", "1.2.3.4", "GET", 3600, "click", {}, "empty-user-agent"),
    (GMAIL_PROXY, "66.249.84.1", "GET", 3600, "open", {}, "gmail-image-proxy"),
    (YAHOO_PROXY, "98.136.1.1", "GET", 3600, "open", {}, "yahoo-image-proxy"),
    ("Mozilla/5.0", "17.58.63.1", "GET", 3600, "open", {}, "apple-mail-privacy"),
    ("Mozilla/5.0", "::ffff:17.58.63.1", "GET", 3600, "open", {}, "apple-mail-privacy"),
    ("Mozilla/5.0", "2620:149:a44::10", "GET", 3600, "open", {}, "apple-mail-privacy"),
    ("Mozilla/5.0", "203.0.113.9", "GET", 3600, "open", {}, "generic-user-agent"),
    ("Mozilla/5.0 (compatible; SafeLinks/1.0)", "40.94.1.1", "GET", 3600, "click", {}, "link-scanner"),
    ("Mozilla/5.0 (compatible; BingPreview/1.0b)", "40.77.1.1", "GET", 3600, "click", {}, "link-scanner"),
    ("Barracuda Sentinel (EE)", "64.235.1.1", "GET", 3600, "click", {}, "link-scanner"),
    ("Mimecast URL Protect", "205.139.1.1", "GET", 3600, "click", {}, "link-scanner"),
    ("Proofpoint URL Defense", "148.163.1.1", "GET", 3600, "click", {}, "link-scanner"),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "3.1.1.1", "GET", 3600, "click", {}, "link-preview"),
    ("facebookexternalhit/1.1", "31.13.1.1", "GET", 3600, "click", {}, "link-preview"),
    (CHROME.replace("Chrome/", "HeadlessChrome/"), "1.2.3.4", "GET", 3600, "click", {}, "headless-browser"),
    ("curl/8.4.0", "1.2.3.4", "GET", 3600, "click", {}, "http-library"),
    ("Wget/1.21.4", "1.2.3.4", "GET", 3600, "open", {}, "http-library"),
    ("python-requests/2.31.0", "1.2.3.4", "GET", 3600, "click", {}, "http-library"),
    ("Go-http-client/1.1", "1.2.3.4", "GET", 3600, "click", {}, "http-library"),
    ("Java/17.0.2", "1.2.3.4", "GET", 3600, "open", {}, "http-library"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "66.249.1.1", "GET", 3600, "click", {}, "crawler"),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0)", "5.39.1.1", "GET", 3600, "open", {}, "crawler"),
    ("SomeSiteCrawler 2.0", "1.2.3.4", "GET", 3600, "click", {}, "crawler"),
    (CHROME, "1.2.3.4", "GET", 2.5, "click", {}, "click-too-soon"),
    (CHROME, "1.2.3.4", "GET", -4.0, "click", {}, "click-too-soon"),  # clock skew counts as soon
]

HUMAN: list[tuple[str, str, str, float | None, Kind]] = [
    (CHROME, "1.2.3.4", "GET", 3600, "click"),
    (FIREFOX, "1.2.3.4", "GET", 600, "click"),
    (SAFARI_MAC, "17.58.63.1", "GET", 60, "click"),  # an Apple employee with a real browser
    (IPHONE, "1.2.3.4", "GET", 11, "click"),
    (ANDROID, "1.2.3.4", "GET", 3600, "open"),
    (CUBOT_PHONE, "1.2.3.4", "GET", 3600, "click"),
    (EDGE, "1.2.3.4", "GET", 3600, "click"),
    (OUTLOOK, "1.2.3.4", "GET", 3600, "open"),
    (APPLE_MAIL, "17.1.1.1", "GET", 5, "open"),  # Apple Mail itself, full WebKit UA
    (THUNDERBIRD, "1.2.3.4", "GET", 3600, "open"),
    (CHROME, "1.2.3.4", "GET", 2.0, "open"),  # the click window does not apply to opens
    (CHROME, "1.2.3.4", "GET", None, "click"),  # send time unknown: no window rule
]


@pytest.mark.parametrize(("ua", "ip", "method", "since", "kind", "headers", "reason"), MACHINE)
def test_machine_rules(
    ua: str, ip: str, method: str, since: float | None, kind: Kind, headers: dict[str, str], reason: str
) -> None:
    assert classify(
        method=method, user_agent=ua, ip=ip, seconds_since_send=since, kind=kind, headers=headers
    ) == (True, reason)


@pytest.mark.parametrize(("ua", "ip", "method", "since", "kind"), HUMAN)
def test_ordinary_browsers_and_mail_clients_stay_human(
    ua: str, ip: str, method: str, since: float | None, kind: Kind
) -> None:
    assert classify(method=method, user_agent=ua, ip=ip, seconds_since_send=since, kind=kind) == (False, "")


def test_click_window_is_configurable_and_ends_at_the_window() -> None:
    def at(since: float, window: float) -> bool:
        return classify(method="GET", user_agent=CHROME, ip="1.2.3.4", seconds_since_send=since,
                        kind="click", click_window=window)[0]

    assert at(9.99, 10.0) and not at(10.0, 10.0)
    assert at(45.0, 60.0) and not at(45.0, 30.0)
    assert not at(0.5, 0.0)  # a window of 0 turns the rule off


def test_unrelated_headers_do_not_matter() -> None:
    headers = {"Accept": "image/avif,image/webp,*/*", "Purpose": "navigate", "X-Moz": "other"}
    assert classify(method="GET", user_agent=CHROME, ip="1.2.3.4", seconds_since_send=3600,
                    kind="open", headers=headers) == (False, "")


@pytest.mark.parametrize("ip", ["17.58.0.1", "203.0.113.9"])
def test_a_remembered_user_agent_gets_the_same_verdict(ip: str) -> None:
    """The per-User-Agent memo must not change any verdict, nor mix up what depends on the
    address (a bare Mozilla/5.0 is Apple's proxy only from Apple's network)."""
    agents = ["Mozilla/5.0", "GoogleImageProxy", "Mozilla/5.0 (Windows NT 10.0) Chrome/124.0",
              "", "  ", "SomeBot/1.0", "curl/8.1"]
    first = [classify(method="GET", user_agent=a, ip=ip, seconds_since_send=60.0, kind="click")
             for a in agents]
    again = [classify(method="GET", user_agent=a, ip=ip, seconds_since_send=60.0, kind="click")
             for a in agents]
    assert first == again
    assert first[0] == (True, "apple-mail-privacy" if ip.startswith("17.") else "generic-user-agent")
    soon = classify(method="GET", user_agent=agents[2], ip=ip, seconds_since_send=1.0, kind="click")
    assert soon == (True, "click-too-soon")  # the time rule still applies after the memo


def test_very_long_user_agents_are_not_remembered() -> None:
    long_agent = "Mozilla/5.0 " + "x" * 600 + " SomeBot"
    assert classify(method="GET", user_agent=long_agent, ip="", seconds_since_send=None,
                    kind="open") == (True, "crawler")
    assert long_agent not in bots._UA_SEEN
