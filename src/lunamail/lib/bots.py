"""Machine-or-human: is an open or click a person, or software in front of the inbox?

Most "opens" today are fetched by mail providers' image proxies, and many
"clicks" by security gateways that follow every link before the mail is shown.
Counting them as people makes opens meaningless and turns link scanners into
engaged readers.  :func:`classify` is a cheap, pure heuristic over what a
request carries; nothing is dropped, the events keep both the verdict and the
reason, so reports can show raw and human numbers and the rules can change.

Rules, first match wins (the reason string in brackets):

* ``HEAD`` requests: browsers never send one to follow a link [``head-request``].
* Prefetch/preview hints in the headers (``Purpose: prefetch``, ``Sec-Purpose``,
  ``X-Purpose: preview``, ``X-Moz: prefetch``) [``prefetch``].
* An empty User-Agent [``empty-user-agent``].
* Known proxies and scanners by User-Agent token: Gmail's ``GoogleImageProxy``
  [``gmail-image-proxy``]; ``YahooMailProxy`` (Yahoo and AOL) [``yahoo-image-proxy``];
  link scanners and security gateways (Safe Links, BingPreview, Barracuda, Mimecast,
  Proofpoint, ...) [``link-scanner``]; link-preview fetchers of chat apps
  [``link-preview``]; headless browsers [``headless-browser``]; HTTP libraries and
  command-line tools (curl, Wget, python-requests, Go-http-client, ...)
  [``http-library``]; anything calling itself a bot, crawler or spider [``crawler``].
* Apple Mail Privacy Protection: Apple's proxy fetches every image of a message
  when it arrives, with the bare User-Agent ``Mozilla/5.0`` (no platform comment, no
  engine or browser token) from Apple's network.  Heuristic: a bare ``Mozilla/5.0``
  from 17.0.0.0/8 (or Apple's IPv6 2620:149::/32, 2a01:b740::/32)
  [``apple-mail-privacy``]; the same bare User-Agent from anywhere else is no browser
  either [``generic-user-agent``].  Apple Mail showing an image itself sends a full
  WebKit User-Agent and stays human.
* Clicks within ``click_window`` seconds (default 10) of sending: scanners click
  every link within seconds of delivery; people do not [``click-too-soon``].

Everything else is human, with reason ``""``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Literal

__all__ = ["DEFAULT_CLICK_WINDOW", "PREFETCH_HEADERS", "classify"]

DEFAULT_CLICK_WINDOW = 10.0

Kind = Literal["open", "click"]

# User-Agent words (lower case, split at spaces, ``/ ; ( ) ,``) -> reason.  A set lookup
# per word: a regex alternation over dozens of tokens costs a hundred times more.
_UA_WORDS: dict[str, str] = {
    **dict.fromkeys(["googleimageproxy"], "gmail-image-proxy"),
    **dict.fromkeys(["yahoomailproxy"], "yahoo-image-proxy"),
    **dict.fromkeys(
        [
            "safelinks",
            "bingpreview",
            "barracuda",
            "mimecast",
            "proofpoint",
            "messagelabs",
            "ironport",
            "fireeye",
            "trendmicro",
            "forcepoint",
            "symantec",
            "sophos",
            "spamtitan",
            "zscaler",
            "cloudmark",
            "vadesecure",
            "hornetsecurity",
            "urlscan",
            "virustotal",
        ],
        "link-scanner",
    ),
    **dict.fromkeys(
        [
            "slackbot",
            "slackbot-linkexpanding",
            "facebookexternalhit",
            "twitterbot",
            "linkedinbot",
            "discordbot",
            "telegrambot",
            "whatsapp",
            "skypeuripreview",
            "embedly",
        ],
        "link-preview",
    ),
    **dict.fromkeys(
        ["headless", "headlesschrome", "phantomjs", "puppeteer", "playwright", "selenium"],
        "headless-browser",
    ),
    **dict.fromkeys(
        [
            "curl",
            "wget",
            "python-requests",
            "python-urllib",
            "python-httpx",
            "httpx",
            "aiohttp",
            "go-http-client",
            "java",
            "okhttp",
            "libwww-perl",
            "lwp-request",
            "lwp-trivial",
            "axios",
            "node-fetch",
            "undici",
            "apache-httpclient",
            "scrapy",
            "httpie",
            "ruby",
            "faraday",
            "guzzlehttp",
            "php",
            "winhttp",
        ],
        "http-library",
    ),
    **dict.fromkeys(["scanner"], "crawler"),
}
_UA_KEYS = frozenset(_UA_WORDS)
_UA_SPLIT = re.compile(r"[\s/;(),]+")
# Words ending in "bot" that are not bots (device names).
_NOT_BOTS = frozenset({"cubot"})
_BARE_MOZILLA = re.compile(r"Mozilla/5\.0\s*$")
_APPLE_V6 = (ipaddress.ip_network("2620:149::/32"), ipaddress.ip_network("2a01:b740::/32"))
PREFETCH_HEADERS = ("purpose", "sec-purpose", "x-purpose", "x-moz")  # the only ones read


def _apple_ip(ip: str) -> bool:
    """Whether ``ip`` is in Apple's 17.0.0.0/8 (or its main IPv6 ranges)."""
    if ip.startswith("17."):
        return True
    if ":" not in ip:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return str(mapped).startswith("17.")
        return any(addr in net for net in _APPLE_V6)
    return False


def _prefetch(headers: Mapping[str, str]) -> bool:
    if not headers:
        return False
    for name, value in headers.items():
        if name.lower() in PREFETCH_HEADERS and value.strip().lower() in ("prefetch", "preview"):
            return True
    return False


# The User-Agent part of the rules, by User-Agent: real traffic repeats a few hundred
# strings (proxies, scanners, common browsers), and the word split is most of the cost.
_BARE = "\0bare"  # a bare "Mozilla/5.0": the verdict depends on the address
_UA_SEEN: dict[str, str] = {}
_UA_SEEN_MAX = 4096
_UA_KEEP_LEN = 512  # longer ones are classified every time (no one can fill memory)


def _by_user_agent(user_agent: str) -> str:
    """The reason the User-Agent alone makes a request a machine, ``_BARE`` for a bare
    ``Mozilla/5.0``, ``""`` when it looks like a person."""
    ua = user_agent.strip()
    if not ua:
        return "empty-user-agent"
    lower = ua.lower()
    words = _UA_SPLIT.split(lower)
    if not _UA_KEYS.isdisjoint(words):  # the common human case skips the loops below
        for word in words:
            reason = _UA_WORDS.get(word)
            if reason is not None:
                return reason
    if "bot" in lower or "crawler" in lower or "spider" in lower:
        for word in words:
            if (
                (word.endswith("bot") and word not in _NOT_BOTS)
                or "crawler" in word
                or "spider" in word
            ):
                return "crawler"
    return _BARE if _BARE_MOZILLA.match(ua) else ""


def classify(
    *,
    method: str,
    user_agent: str,
    ip: str,
    seconds_since_send: float | None,
    kind: Kind,
    headers: Mapping[str, str] | None = None,
    click_window: float = DEFAULT_CLICK_WINDOW,
) -> tuple[bool, str]:
    """``(machine, reason)`` for one open or click request; reason is ``""`` for a human.

    ``seconds_since_send`` is None when the send time is unknown (the window rule is
    then skipped).  ``headers`` may be any case-insensitive or lower-case mapping."""
    if method.upper() == "HEAD":
        return True, "head-request"
    if headers and _prefetch(headers):
        return True, "prefetch"
    verdict = _UA_SEEN.get(user_agent)
    if verdict is None:
        verdict = _by_user_agent(user_agent)
        if len(user_agent) <= _UA_KEEP_LEN:
            if len(_UA_SEEN) >= _UA_SEEN_MAX:
                _UA_SEEN.clear()
            _UA_SEEN[user_agent] = verdict
    if verdict is _BARE:
        return True, "apple-mail-privacy" if _apple_ip(ip) else "generic-user-agent"
    if verdict:
        return True, verdict
    if kind == "click" and seconds_since_send is not None and seconds_since_send < click_window:
        return True, "click-too-soon"
    return False, ""
