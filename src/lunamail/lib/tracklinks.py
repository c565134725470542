"""Tracked URLs: click redirects and the open pixel, as signed tokens.

Delivery calls this once per link of every recipient's message, so it is on the
send hot path: it imports no service, does no I/O, and precomputes everything
that is the same for one recipient (the HMAC state over the token's fixed
prefix), leaving one HMAC finish and one base64 pass per link.  The tokens are
byte for byte what :func:`lunamail.lib.tokens.make_token` makes (a unit test
holds that), so :func:`lunamail.lib.tokens.read_token` verifies them.

The destination URL is inside the signed token, so a click needs no lookup and
a tampered token can never redirect anywhere else.  Tokens carry no expiry by
default (links in old mails keep working); give ``max_age`` seconds to make
them expire that long after sending.
"""

from __future__ import annotations

import binascii
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from lunamail.lib import tokens

__all__ = [
    "ClickToken",
    "OpenToken",
    "TrackingLinks",
    "insert_pixel",
    "read_click",
    "read_open",
]

_SEP = "\x1f"
_MAC_BYTES = 16
_B64_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_B64_TO_URLSAFE).rstrip(b"=").decode("ascii")


def _hmac_pads(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """HMAC-SHA256 (RFC 2104) as two hash states to copy: copying a bare SHA-256 state and
    finishing it by hand is faster than copying an ``hmac`` object, and gives the same MAC."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return (
        hashlib.sha256(bytes(b ^ 0x36 for b in key)),
        hashlib.sha256(bytes(b ^ 0x5C for b in key)),
    )


@dataclass(frozen=True, slots=True)
class ClickToken:
    """What an authentic click token says."""

    account: str
    campaign: str
    email: str
    link: int
    url: str
    sent_at: int


@dataclass(frozen=True, slots=True)
class OpenToken:
    """What an authentic open-pixel token says."""

    account: str
    campaign: str
    email: str
    sent_at: int


class TrackingLinks:
    """Builds the tracked URLs of one campaign; make it once per campaign and worker.

    ``key`` is the account's :data:`lunamail.lib.tokens.TRACK` key.
    """

    __slots__ = ("_account", "_campaign", "_click_base", "_inner", "_max_age", "_open_base", "_outer")

    def __init__(
        self, base_url: str, key: bytes, account: str, campaign: str, *, max_age: float | None = None
    ) -> None:
        if _SEP in account or _SEP in campaign:
            raise ValueError("account and campaign ids must not contain the token separator")
        base = base_url.rstrip("/")
        self._click_base = f"{base}/c/"
        self._open_base = f"{base}/o/"
        self._account = account
        self._campaign = campaign
        self._max_age = int(max_age) if max_age else 0
        self._inner, self._outer = _hmac_pads(key)

    def _mac(self, payload: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:_MAC_BYTES]

    def _expires(self, sent_at: float) -> int:
        return int(sent_at) + self._max_age if self._max_age else 0

    def rewriter(self, email: str, sent_at: float) -> Callable[[str, int], str]:
        """The ``link_rewriter`` for one recipient: ``(url, index) -> {base}/c/{token}``."""
        if _SEP in email:
            raise ValueError("email must not contain the token separator")
        prefix = _SEP.join(
            (self._account, str(self._expires(sent_at)), "c", self._campaign, email, "")
        ).encode("utf-8")
        state = self._inner.copy()
        state.update(prefix)
        inner_copy = state.copy
        outer_copy = self._outer.copy
        suffix = f"{_SEP}{int(sent_at)}"
        base = self._click_base

        def rewrite(url: str, index: int) -> str:
            if _SEP in url:  # never in a real URL; percent-encoding keeps it the same URL
                url = url.replace(_SEP, "%1F")
            rest = f"{index}{_SEP}{url}{suffix}".encode()
            inner = inner_copy()
            inner.update(rest)
            outer = outer_copy()
            outer.update(inner.digest())
            return f"{base}{_b64(prefix + rest)}.{_b64(outer.digest()[:_MAC_BYTES])}"

        return rewrite

    def pixel_url(self, email: str, sent_at: float) -> str:
        """``{base}/o/{token}.gif`` for one recipient's open pixel."""
        if _SEP in email:
            raise ValueError("email must not contain the token separator")
        payload = _SEP.join(
            (self._account, str(self._expires(sent_at)), "o", self._campaign, email, str(int(sent_at)))
        ).encode("utf-8")
        return f"{self._open_base}{_b64(payload)}.{_b64(self._mac(payload))}.gif"


def insert_pixel(html: str, pixel_url: str) -> str:
    """``html`` with the open pixel just before its last ``</body>`` (appended when there is
    none), last so a client that stops loading early has already shown the content.

    Not an ``<img>``: spam filters score a short, text-rich newsletter as "image only"
    (SpamAssassin's ``HTML_IMAGE_ONLY_*``, +2 points) for a single 1x1 image.  The pixel is
    a 1x1 cell's background (loaded by Gmail, Apple Mail, Yahoo, Outlook on the web), and
    an ``<img>`` inside an Outlook-only conditional comment for Outlook on Windows, which
    ignores cell backgrounds; filters skip comments."""
    url = _attr(pixel_url)
    tag = (
        '<table role="presentation" width="1" height="1" cellpadding="0" cellspacing="0" border="0">'
        f'<tr><td width="1" height="1" background="{url}" style="background-image:url(\'{url}\');'
        'font-size:1px;line-height:1px">&#8203;</td></tr></table>'
        f'<!--[if mso]><img src="{url}" width="1" height="1" alt="" border="0"><![endif]-->'
    )
    at = html.rfind("</body>")
    if at < 0:
        at = html.rfind("</BODY>")
    if at < 0:
        return html + tag
    return html[:at] + tag + html[at:]


def _attr(value: str) -> str:
    # Token URLs only hold base64url characters, but the base URL comes from settings.
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def read_click(
    key_for_account: Callable[[str], bytes], token: str, *, now: float | None = None
) -> ClickToken | None:
    """The click a token stands for, or None when it is forged, tampered with, expired,
    malformed or points anywhere but http(s).  ``now`` defaults to the wall clock."""
    found = tokens.read_token(key_for_account, token, now=time.time() if now is None else now)
    fields = tokens.fields_match(found, "c", 5)
    if found is None or fields is None:
        return None
    campaign, email, index, url, sent_at = fields
    if not (index.isdigit() and sent_at.isdigit()):
        return None
    if not url[:8].lower().startswith(("http://", "https://")):
        return None
    return ClickToken(found[0], campaign, email, int(index), url, int(sent_at))


def read_open(
    key_for_account: Callable[[str], bytes], token: str, *, now: float | None = None
) -> OpenToken | None:
    """The open a pixel token stands for (without its ``.gif``), or None when not authentic."""
    found = tokens.read_token(key_for_account, token, now=time.time() if now is None else now)
    fields = tokens.fields_match(found, "o", 3)
    if found is None or fields is None:
        return None
    campaign, email, sent_at = fields
    if not sent_at.isdigit():
        return None
    return OpenToken(found[0], campaign, email, int(sent_at))
