"""MIME assembled directly as bytes.

``email.message.EmailMessage`` costs ~3 ms per message; a campaign sends the same
structure thousands of times with only a few fields changing.  ``CampaignMime``
encodes every static part once (From, Reply-To, List-Id, boundaries,
attachments) and ``build`` only encodes what differs per recipient, so a
personalised message is a handful of C-level encodes and one ``join``.
"""

from __future__ import annotations

import base64
import binascii
import os
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

__all__ = [
    "RESERVED_HEADERS",
    "Attachment",
    "CampaignMime",
    "encode_header_text",
    "extra_header_problems",
    "format_address",
    "format_date",
    "make_message_id",
    "qp_encode",
]

CRLF = b"\r\n"
_SOFT_LIMIT = 78  # RFC 5322 "SHOULD" line length
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# atext of RFC 5322 plus space: a display name made only of these needs no quoting.
_PLAIN_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII except ':'
_NEWLINES = re.compile(r"\r\n?|\n")
_CONTROL_RUNS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def header_safe(value: str) -> str:
    """``value`` with each run of control characters (C0, DEL, C1; tabs and line breaks
    included) replaced by one space, ready for a header."""
    return " ".join(_CONTROL_RUNS.sub(" ", value).split())


# Headers the platform writes itself (or that a relay adds): a campaign may not set them.
RESERVED_HEADERS = frozenset({
    "from", "to", "cc", "bcc", "sender", "reply-to", "subject", "date", "message-id", "return-path",
    "list-id", "list-unsubscribe", "list-unsubscribe-post", "feedback-id", "dkim-signature",
    "mime-version", "content-type", "content-transfer-encoding", "received", "precedence",
    "x-lunamail-token", "x-lunamail-campaign", "x-lunamail-test", "arc-seal", "arc-message-signature",
    "arc-authentication-results", "authentication-results",
})
MAX_EXTRA_HEADERS = 20


def extra_header_problems(headers: Mapping[str, str]) -> list[str]:
    """What is wrong with a campaign's own extra headers ([] when they are usable): printable
    ASCII names, single-line values under 900 characters, none of the reserved ones."""
    out: list[str] = []
    if len(headers) > MAX_EXTRA_HEADERS:
        out.append(f"at most {MAX_EXTRA_HEADERS} extra headers")
    seen: set[str] = set()
    for name, value in headers.items():
        low = str(name).lower()
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name) or len(name) > 76:
            out.append(f"header name {name!r} must be printable ASCII without ':' or spaces")
        elif low in RESERVED_HEADERS or low.startswith("x-lunamail-"):
            out.append(f"header {name!r} is set by the platform and cannot be overridden")
        elif low in seen:
            out.append(f"header {name!r} is given twice")
        if not isinstance(value, str) or "\r" in value or "\n" in value or "\x00" in value:
            out.append(f"header {name!r}: the value must be one line of text")
        elif len(value) > 900:
            out.append(f"header {name!r}: the value is longer than 900 characters")
        seen.add(low)
    return out


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


def format_date(ts: float) -> str:
    """RFC 5322 date in UTC (``Tue, 14 Nov 2023 22:13:20 +0000``); no locale, no tz lookups."""
    t = time.gmtime(ts)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def make_message_id(domain: str) -> str:
    """A globally unique ``<...@domain>``: time plus 96 random bits, so ids never collide
    across workers or machines without coordination."""
    return f"<{int(time.time() * 1000):x}.{_ID_RANDOM.getrandbits(96):024x}@{_ascii_domain(domain)}>"


# Seeded once from the OS: os.urandom per message is a syscall that also drops the GIL,
# and a worker thread that drops it waits for it again behind the other threads.  Ids
# need to be unique, not secret.  Re-seeded in a forked child so siblings never share it.
_ID_RANDOM = random.Random(os.urandom(32))
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _ID_RANDOM.seed(os.urandom(32)))


def qp_encode(text: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line breaks, ending in CRLF.

    The fast path (no ASCII control characters, few distinct non-ASCII bytes: nearly
    every email) works on the whole text with C-level ``translate``/``replace``: ``=``,
    each non-ASCII byte, whitespace before a line break and ``From `` are escaped by
    replacement, and only lines over 76 characters are cut, by a regex that never splits
    an escape.  ``binascii.b2a_qp`` remains the path for everything else.  Every CR, LF
    and CRLF becomes one line break; ``From `` never starts a line (mbox-style relays
    would mangle it).
    """
    if "\r" in text:
        text = _NEWLINES.sub("\n", text)
    if not text.endswith("\n"):
        text += "\n"
    data = text.encode("utf-8")
    odd = data.translate(None, _QP_PLAIN)  # bytes that need an escape: controls, non-ASCII
    high: set[int] = set()
    if odd:
        high = set(odd)
        if odd.translate(None, _QP_HIGH) or len(high) > _QP_MAX_DISTINCT:
            return _qp_slow(data)
    if b"=" in data:
        data = data.replace(b"=", b"=3D")
    for byte in high:
        data = data.replace(_QP_BYTE[byte], _QP_ESCAPE[byte])
    if b" \n" in data:
        data = data.replace(b" \n", b"=20\n")
    if b"\t\n" in data:
        data = data.replace(b"\t\n", b"=09\n")
    if b"From " in data:  # anywhere: a soft line break could otherwise start a line with it
        data = data.replace(b"From ", b"=46rom ")
    return CRLF.join([
        line if len(line) <= _QP_LINE else b"=\r\n".join(_QP_CHUNK.findall(line))
        for line in data.split(b"\n")
    ])


_QP_LINE = 76
# Up to 75 characters that do not end inside an "=XX" escape (every "=" starts one).
_QP_CHUNK = re.compile(rb".{1,75}(?<!=)(?<!=.)", re.S)
_QP_PLAIN = b"\t\n" + bytes(range(0x20, 0x7F))
_QP_HIGH = bytes(range(0x80, 0x100))
_QP_BYTE = [bytes((i,)) for i in range(256)]
_QP_ESCAPE = [b"=%02X" % i for i in range(256)]
# One C-level replace per distinct non-ASCII byte: quick for Latin-script text; text in
# other scripts has many distinct bytes and goes to b2a_qp.
_QP_MAX_DISTINCT = 24


def _qp_slow(data: bytes) -> bytes:
    """``binascii.b2a_qp`` for text with control characters or many distinct non-ASCII
    bytes (``data`` ends in LF)."""
    out = binascii.b2a_qp(data, False, True, False)
    if out.startswith(b"From "):
        out = b"=46" + out[1:]
    if b"\nFrom " in out:
        out = out.replace(b"\nFrom ", b"\n=46rom ")
    return out.replace(b"\n", CRLF)


def _ascii_domain(domain: str) -> str:
    if domain.isascii():
        return domain
    return domain.encode("idna").decode("ascii")


def _ascii_address(addr: str) -> str:
    """Addresses go out as ASCII: an internationalised domain becomes punycode; a non-ASCII
    local part would need SMTPUTF8, which we do not negotiate, so it is refused here."""
    if "\r" in addr or "\n" in addr:
        raise ValueError(f"line break in address {addr!r}")
    if addr.isascii():
        return addr
    local, sep, domain = addr.rpartition("@")
    if not sep or not local.isascii():
        raise ValueError(f"address {addr!r} needs SMTPUTF8 (non-ASCII local part)")
    return f"{local}@{_ascii_domain(domain)}"


def _encoded_words(text: str, first_room: int) -> list[str]:
    """Split ``text`` into RFC 2047 B encoded-words of whole characters: the first fits in
    ``first_room`` columns, the rest on their own continuation lines (each word ≤ 75)."""
    data = text.encode("utf-8", "surrogatepass")
    words: list[str] = []
    limit = max(3, min(75, first_room) - 12) // 4 * 3  # payload bytes that fit in this word
    pos, size = 0, len(data)
    while pos < size or not words:
        end = min(size, pos + limit)
        while pos < end < size and data[end] & 0xC0 == 0x80:  # never split a character
            end -= 1
        if end == pos and pos < size:  # tiny room: take one whole character anyway
            end = pos + 1
            while end < size and data[end] & 0xC0 == 0x80:
                end += 1
        words.append("=?utf-8?b?" + base64.b64encode(data[pos:end]).decode("ascii") + "?=")
        pos = end
        limit = (min(75, _SOFT_LIMIT - 1) - 12) // 4 * 3
    return words


def _needs_encoding(text: str) -> bool:
    if not text.isascii() or "=?" in text:
        return True
    # control characters and leading/trailing or doubled whitespace do not survive
    # unfolding/parsing as plain text; encoded-words carry them exactly
    return not text.isprintable() or text != text.strip() or "  " in text


def encode_header_text(name: str, value: str) -> str:
    """``Name: value`` for unstructured text (Subject), folded to ≤ 78 columns where
    the words allow, never over 998; encoded-words when the text is not plain ASCII.
    Line breaks inside the value become spaces (no header injection)."""
    if "\r" in value or "\n" in value:
        value = _NEWLINES.sub(" ", value)
    prefix = name + ": "
    if not value:
        return prefix.rstrip()
    if _needs_encoding(value) or max(len(w) for w in value.split(" ")) > 900:
        words = _encoded_words(value, _SOFT_LIMIT - len(prefix))
        return prefix + "\r\n ".join(words)
    return prefix + _fold_words(value.split(" "), len(prefix))


def _fold_words(words: Sequence[str], col: int) -> str:
    out: list[str] = []
    line: list[str] = []
    for w in words:
        if line and col + 1 + len(w) > _SOFT_LIMIT:
            out.append(" ".join(line))
            line = [w]
            col = 1 + len(w)
        else:
            col += len(w) + (1 if line else 0)
            line.append(w)
    out.append(" ".join(line))
    return "\r\n ".join(out)


def _phrase(name: str, room: int) -> str:
    """A display name as atoms, a quoted-string, or (non-ASCII) folded encoded-words."""
    if "\r" in name or "\n" in name:
        name = _NEWLINES.sub(" ", name)
    if name.isascii() and name.isprintable() and "=?" not in name and len(name) < 200:
        if _PLAIN_PHRASE.fullmatch(name) and name == name.strip() and "  " not in name:
            phrase = name
        else:
            phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if len(phrase) <= room:
            return phrase
    return "\r\n ".join(_encoded_words(name, room))


def format_address(name: str | None, addr: str, *, room: int = _SOFT_LIMIT) -> str:
    """``Name <addr>``, folding before the address when the line would pass 78 columns."""
    addr = _ascii_address(addr)
    if not name:
        return addr
    phrase = _phrase(name, room)
    last = phrase.rpartition("\n")[2]
    if len(last) + len(addr) + 3 <= (room if "\n" not in phrase else _SOFT_LIMIT):
        return f"{phrase} <{addr}>"
    return f"{phrase}\r\n <{addr}>"


def _header(name: str, value: str) -> bytes:
    return f"{name}: {value}\r\n".encode("ascii")


def _filename_param(filename: str) -> str:
    if filename.isascii() and filename.isprintable() and '"' not in filename and "\\" not in filename:
        return f'filename="{filename}"'
    return "filename*=utf-8''" + quote(filename, safe="")


def _boundary() -> str:
    # "=_" never occurs in quoted-printable or base64 output, so a boundary containing it
    # can be reused for every message of the campaign without scanning bodies.
    return "=_luna_" + os.urandom(12).hex()


class CampaignMime:
    """Per-campaign MIME template: static headers and parts encoded once; ``build`` is the
    per-recipient fast path.  The result has CRLF line endings and no dot-stuffing."""

    def __init__(
        self,
        *,
        from_email: str,
        from_name: str = "",
        list_id: str = "",
        list_name: str = "",
        reply_to: str | None = None,
        unsubscribe_mailto: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        attachments: Sequence[Attachment] = (),
        bounce_domain: str | None = None,
        bounce_local: str = "bounce",
    ) -> None:
        self.from_email = _ascii_address(from_email)
        self.bounce_domain = _ascii_domain(bounce_domain or self.from_email.rpartition("@")[2])
        self.bounce_local = bounce_local
        self._mailto = f"<mailto:{_ascii_address(unsubscribe_mailto)}>" if unsubscribe_mailto else ""
        alt = _boundary()
        self._alt_open = f"--{alt}\r\n".encode("ascii")
        head: list[bytes] = [
            ("From: " + format_address(from_name, self.from_email, room=_SOFT_LIMIT - 6) + "\r\n").encode("ascii")
        ]
        if reply_to:
            head.append(_header("Reply-To", _ascii_address(reply_to)))
        if list_id:  # else each message names its own list (see ``build``)
            list_id_value = f"<{_ascii_domain(list_id)}>"
            if list_name:
                list_id_value = _phrase(list_name, _SOFT_LIMIT - 9) + " " + list_id_value
            head.append(_header("List-Id", list_id_value))
        head.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        for k, v in (extra_headers or {}).items():
            if not _HEADER_NAME.fullmatch(k):
                raise ValueError(f"invalid header name {k!r}")
            head.append((encode_header_text(k, v) + "\r\n").encode("ascii"))
        head.append(b"MIME-Version: 1.0\r\n")
        qp_head = b'; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        self._text_head = self._alt_open + b"Content-Type: text/plain" + qp_head
        self._html_head = CRLF + self._alt_open + b"Content-Type: text/html" + qp_head
        alt_close = f"\r\n--{alt}--\r\n".encode("ascii")
        alt_type = f'Content-Type: multipart/alternative;\r\n boundary="{alt}"\r\n'.encode("ascii")
        if attachments:
            mixed = _boundary()
            head.append(f'Content-Type: multipart/mixed;\r\n boundary="{mixed}"\r\n\r\n'.encode("ascii"))
            self._text_head = f"--{mixed}\r\n".encode("ascii") + alt_type + CRLF + self._text_head
            tail = [alt_close]
            for a in attachments:
                b64 = base64.encodebytes(a.content).replace(b"\n", CRLF)
                tail.append(
                    f"\r\n--{mixed}\r\nContent-Type: {a.content_type}\r\n"
                    f"Content-Disposition: attachment; {_filename_param(a.filename)}\r\n"
                    "Content-Transfer-Encoding: base64\r\n\r\n".encode("ascii")
                    + b64.removesuffix(CRLF)
                )
            tail.append(f"\r\n--{mixed}--\r\n".encode("ascii"))
            self._tail = b"".join(tail)
        else:
            head.append(alt_type + CRLF)
            self._tail = alt_close
        self._static = b"".join(head)

    def return_path(self, token: str) -> str:
        """VERP envelope sender ``bounce+<token>@bounce-domain`` that maps a bounce back to
        campaign and recipient."""
        return f"{self.bounce_local}+{token}@{self.bounce_domain}"

    def build(
        self,
        *,
        to_email: str,
        to_name: str = "",
        subject: str,
        html: str,
        text: str,
        unsubscribe_url: str,
        message_id: str,
        date: float,
        return_path_token: str | None = None,
        headers: Mapping[str, str] | None = None,
        list_id: str | None = None,
        feedback_id: str | None = None,
    ) -> bytes:
        """The whole message as bytes.  ``return_path_token`` is also written as
        ``X-Lunamail-Token`` so bounce reports that quote only headers still map back.
        ``list_id`` (RFC 2919, e.g. ``<list>.<account>.<domain>``) and ``feedback_id``
        (``campaign:list:account:sender``) are per message: a campaign to several lists
        names each recipient's own list."""
        if not message_id.startswith("<"):
            message_id = f"<{message_id}>"
        # Control characters never reach a header (a parser flags them even encoded).
        if not subject.isprintable():
            subject = header_safe(subject)
        if to_name and not to_name.isprintable():
            to_name = header_safe(to_name)
        unsub = f"<{unsubscribe_url}>"
        if not unsubscribe_url.isascii() or not unsub.isprintable() or ">" in unsubscribe_url or len(unsub) > 900:
            raise ValueError("unsubscribe_url must be a printable ASCII URL under 900 characters")
        if self._mailto:
            sep = ", " if len(unsub) + len(self._mailto) < _SOFT_LIMIT - 20 else ",\r\n "
            unsub += sep + self._mailto
        parts = [
            b"Date: ",
            format_date(date).encode("ascii"),
            b"\r\nTo: ",
            format_address(to_name, to_email, room=_SOFT_LIMIT - 4).encode("ascii"),
            b"\r\n",
            encode_header_text("Subject", subject).encode("ascii"),
            b"\r\nMessage-ID: ",
            message_id.encode("ascii"),
            b"\r\nList-Unsubscribe: ",
            unsub.encode("ascii"),
            b"\r\n",
        ]
        if return_path_token:
            parts.append(_header("X-Lunamail-Token", return_path_token))
        if list_id:
            parts.append(_header("List-Id", f"<{_ascii_domain(list_id)}>"))
        if feedback_id:
            if not feedback_id.isascii() or not feedback_id.isprintable() or len(feedback_id) > 200:
                raise ValueError("feedback_id must be printable ASCII")
            parts.append(_header("Feedback-ID", feedback_id))
        if headers:
            for k, v in headers.items():
                if not _HEADER_NAME.fullmatch(k):
                    raise ValueError(f"invalid header name {k!r}")
                parts.append((encode_header_text(k, v) + "\r\n").encode("ascii"))
        parts += [
            self._static,
            self._text_head,
            qp_encode(text),
            self._html_head,
            qp_encode(html),
            self._tail,
        ]
        return b"".join(parts)
