"""Classify raw feedback mail: bounce, complaint, auto-reply or other.

Inbound feedback is hostile, broken and inconsistent: RFC 3464 delivery
reports, RFC 5965 ARF complaints, and the plain-text bounces many MTAs still
send (qmail, Exim, Exchange, Yahoo).  :func:`classify` turns any bytes into a
:class:`Classification` and never raises -- the raw message is already stored
(principle 8), so a bad parse must degrade to ``kind="other"``, not crash the
handler into the dead-letter queue.

Hard, soft or sender.  ``hard`` means *the address is bad: suppress it* and is
only ever a recipient problem: unknown user, mailbox gone or disabled, no such
domain (``5.1.x`` except ``5.1.7``/``5.1.8``, ``5.2.1``, ``5.4.4``, or a 5xx whose
text says so).  ``sender`` means *the receiver refused us, not the address*:
authentication (SPF, DKIM, DMARC, ``5.7.26``), our envelope sender (``5.1.7``,
``5.1.8``), policy, reputation, block lists, rate limits (Gmail's "receiving mail
at a rate" ``4.2.1``/``5.2.1``, ``4.7.28``), content and size, relay and routing
problems ("too many hops"), and any 5xx that does not say the address is bad.
These never suppress anyone; they are counted per receiving domain and watched by
the guard.  ``soft`` is a transient recipient-side failure (mailbox full,
timeouts, greylisting, expiry): only repeated soft bounces spread over days make
the address hard (see ``policy``).

A DSN whose recipients are only ``Action: delayed``, and a plain-text warning
that delivery is still being retried (Postfix, Exim, Sendmail, Exchange, Gmail,
qmail wording), is ``kind="delay"``: it must never count as a bounce.
Microsoft's older non-ARF junk-mail reports are complaints.  Plain-text bounces
name their recipients on lines of their own or inside sentences ("Your message
to x@y couldn't be delivered"); only the notice before the returned original is
read for them, and the original's own From / Return-Path / Reply-To are never
taken as the failed recipient.  ARF reports whose
Feedback-Type is ``not-spam`` or ``auth-failure`` are ``other`` (they are not
a recipient's complaint); ``feedback_type`` still says which.

The recipient: ``verp`` is the first address that looks like a VERP return
path, taken from the envelope recipient the caller passes, then the bounce's
own Delivered-To / X-Original-To / Envelope-To / To headers, then report fields
naming the original sender, then the returned original's Return-Path.  Decode it
with :func:`lunamail.lib.verp.decode_return_path` -- it is the
trusted mapping.  ``recipients`` are what the report itself names (second choice:
unsigned, and sometimes redacted or rewritten by forwarding).
"""

from __future__ import annotations

import contextlib
import email
import email.header
import email.message
import email.parser
import email.policy
import html
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from lunamail.lib.bounces import BounceType, basic_code, bounce_type_for, status_of

__all__ = ["Classification", "RecipientReport", "bounce_type_for", "classify"]

Kind = Literal["bounce", "complaint", "auto-reply", "delay", "other"]

MAX_BYTES = 4 * 1024 * 1024  # feedback mail beyond this is parsed from its first 4 MiB
_MAX_TEXT = 256 * 1024  # notification text scanned by the heuristics
_MAX_PARTS = 300
_MAX_DEPTH = 12
_MAX_RECIPIENTS = 50
_MAX_DIAG = 1000


@dataclass(slots=True)
class RecipientReport:
    """One recipient as the report describes it."""

    email: str
    action: str | None = None
    status: str | None = None
    diagnostic: str | None = None
    bounce_type: BounceType | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "action": self.action,
            "status": self.status,
            "diagnostic": self.diagnostic,
            "bounce_type": self.bounce_type,
        }


@dataclass(slots=True)
class Classification:
    """What a feedback message is and whom it is about (see the module docstring)."""

    kind: Kind = "other"
    bounce_type: BounceType | None = None
    recipients: list[str] = field(default_factory=list)
    status: str | None = None
    diagnostic: str | None = None
    verp: str | None = None
    original_message_id: str | None = None
    feedback_type: str | None = None
    action: str | None = None
    subject: str | None = None
    details: list[RecipientReport] = field(default_factory=list)
    original_headers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the CLI prints exactly this)."""
        return {
            "kind": self.kind,
            "bounce_type": self.bounce_type,
            "recipients": list(self.recipients),
            "status": self.status,
            "diagnostic": self.diagnostic,
            "verp": self.verp,
            "original_message_id": self.original_message_id,
            "feedback_type": self.feedback_type,
            "action": self.action,
            "subject": self.subject,
            "details": [d.to_dict() for d in self.details],
            "original_headers": dict(self.original_headers),
        }


# --------------------------------------------------------------------------- patterns

_ADDR = r"[^\s<>()\[\],;:\"@]{1,128}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,250}[A-Za-z0-9])?"
_ADDR_RE = re.compile(_ADDR)
_ADDR_LINE_RE = re.compile(rf"^\s*<?({_ADDR})>?\s*(?::\s*(.*))?$")
_VERP_LOCAL_RE = re.compile(r"[+=-][A-Za-z2-7]{16,}$")
_REMOTE_RE = re.compile(r"Remote Server returned '([^']{1,500})'", re.I)
_WS_RE = re.compile(r"\s+")
_TAG_RE = re.compile(r"<[^>]{0,2000}>")

_DAEMON_LOCALS = frozenset(
    {"mailer-daemon", "mailer_daemon", "maildaemon", "mail-daemon", "postmaster", "mdaemon"}
)
_BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|undelivered mail|returned mail|mail delivery (failed|failure|system)"
    r"|delivery status notification \((failure|delay)|failure notice|delivery failure"
    r"|non[- ]?delivery|could not be delivered|delivery has failed|mail system error"
    r"|warning: could not send|delayed mail",
    re.I,
)
_BOUNCE_BODY_RE = re.compile(
    r"qmail-send program|created automatically by mail delivery software"
    r"|delivery has failed to these recipients|unable to deliver your message"
    r"|could not be delivered to one or more recipients|permanent fatal errors"
    r"|delivery to the following recipients? failed|message could not be delivered"
    r"|wasn't delivered to|couldn't be delivered|address\(es\) failed",
    re.I,
)
# Where the returned original starts in a plain-text notice.  Never sendmail's first
# line ("The original message was received at ..."): that would hide its recipients.
_ORIGINAL_MARK_RE = re.compile(
    # possessive runs: a line of a million dashes must not backtrack
    r"^[ \t]*+(?:-++[ \t]*+)?(?:below this line is a copy of the message"
    r"|this is a copy of the message"
    r"|below is a copy of the original message"
    r"|original message headers:?"
    r"|original message(?: follows)?[ \t]*-+"
    r"|the (?:original message|header of the original message) (?:is attached|follows)"
    r"|undelivered message attached"
    r"|content-type: message/rfc822)"
    r"|^[ \t]*+-{2,}+[^\r\n]{0,40}?(?:ursprüngl|original|исходного|原始邮件|원본|mensagem original)"
    r"[^\r\n]{0,40}?-{2,}[ \t\r]*$",
    re.I | re.M,
)
_DELAY_SUBJECT_RE = re.compile(
    r"delayed mail|delivery delayed|\(delay\)|warning: could not send|still being retried"
    r"|delivery (?:status notification )?delay|message .{0,40} delayed|delivery delayed|delayed:",
    re.I,
)
_DELAY_BODY_RE = re.compile(
    r"this is a warning only|has not yet been delivered|not yet been delivered|will be retried"
    r"|will continue to be attempted|will keep trying|will retry for|delivery attempts will continue"
    r"|message not delivered yet|hasn't been delivered yet|still undelivered|delivery is delayed"
    r"|temporary problem delivering|not going to try to deliver .{0,80} yet|i'll keep trying",
    re.I | re.S,
)
_FINAL_FAILURE_RE = re.compile(
    r"permanent error|permanent fatal|i've given up|giving up on|removed from the mail queue"
    r"|could not be delivered to one or more|address\(es\) failed|wasn't delivered to"
    r"|couldn't be delivered|delivery has failed",
    re.I | re.M,
)
_LABEL_ADDR_RE = re.compile(
    rf"^\s*(?:failed recipient|recipient|original recipient|final recipient|address|destinataire"
    rf"|empf[äa]nger|destinatario)s?\s*:\s*<?({_ADDR})>?\s*$",
    re.I,
)
_MS_COMPLAINT_SUBJECT_RE = re.compile(r"^\s*complaint about message from", re.I)
_MS_FBL_DOMAIN_RE = re.compile(r"(?:^|\.)(?:hotmail|outlook|live|msn)\.", re.I)
_AUTO_SUBJECT_RE = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response)"
    r"|auto:|autoreply|abwesenheitsnotiz|r[ée]ponse automatique|respuesta autom[áa]tica"
    r"|vacation(?: reply)?|away from (?:the )?office|on vacation)",
    re.I,
)
_KEPT_ORIGINAL = ("return-path", "message-id", "list-unsubscribe", "list-id", "to", "from", "reply-to",
                  "sender")
_COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other", "complaint", "opt-out"})


# --------------------------------------------------------------------------- helpers


def _text(value: object) -> str:
    """A header value as clean one-line text (RFC 2047 decoded when it can be)."""
    try:
        if value is None:
            return ""
        if isinstance(value, email.header.Header):
            raw = str(value)
        else:
            raw = str(value)
            if "=?" in raw:
                with contextlib.suppress(Exception):
                    raw = str(email.header.make_header(email.header.decode_header(raw)))
        return _WS_RE.sub(" ", raw.replace("\udcff", "")).strip()[: _MAX_DIAG * 4]
    except Exception:
        return ""


def _header(msg: email.message.Message, name: str) -> str:
    try:
        return _text(msg.get(name))
    except Exception:
        return ""


def _headers_all(msg: email.message.Message, name: str) -> list[str]:
    try:
        return [_text(v) for v in (msg.get_all(name) or [])]
    except Exception:
        return []


def _addresses(value: str) -> list[str]:
    return [a.strip(".").lower() for a in _ADDR_RE.findall(value or "")][:_MAX_RECIPIENTS]


def _first_address(value: str) -> str | None:
    found = _addresses(value)
    return found[0] if found else None


def _is_daemon(addr: str | None) -> bool:
    return bool(addr) and str(addr).partition("@")[0].lower() in _DAEMON_LOCALS


def _verp_in(value: str) -> str | None:
    for m in _ADDR_RE.finditer(value or ""):
        if _VERP_LOCAL_RE.search(m.group(0).partition("@")[0]):
            return m.group(0)
    return None


def _part_text(part: email.message.Message) -> str:
    """Decoded text of a leaf part; wrong or unknown charsets degrade, never raise."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        try:
            inner = part.get_payload()
        except Exception:
            return ""
        return inner[:_MAX_TEXT] if isinstance(inner, str) else ""
    if not isinstance(payload, bytes):
        return ""
    payload = payload[:_MAX_TEXT]
    charset = "utf-8"
    with contextlib.suppress(Exception):
        charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except (LookupError, ValueError, TypeError):
        return payload.decode("utf-8", "replace")


def _content_type(part: email.message.Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


_Part = tuple[email.message.Message, str, bool]


def _walk(msg: email.message.Message) -> list[_Part]:
    """Parts as (part, content type, inside_attached_original), bounded in depth and
    count, iteratively so hostile nesting cannot exhaust the stack."""
    out: list[_Part] = []
    stack: list[tuple[email.message.Message, int, bool]] = [(msg, 0, False)]
    while stack and len(out) < _MAX_PARTS:
        part, depth, inside = stack.pop()
        ctype = _content_type(part)
        out.append((part, ctype, inside))
        if depth >= _MAX_DEPTH:
            continue
        try:
            children = part.get_payload() if part.is_multipart() else None
        except Exception:
            children = None
        if not isinstance(children, list):
            continue
        nested = inside or ctype in ("message/rfc822", "message/global")
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            continue  # its "children" are field blocks, handled by _field_blocks
        for child in reversed(children):
            if isinstance(child, email.message.Message):
                stack.append((child, depth + 1, nested))
    return out


def _parse_fields(text: str) -> list[list[tuple[str, str]]]:
    """RFC 822-style field blocks separated by blank lines, with continuation lines."""
    blocks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for line in text[:_MAX_TEXT].splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        if line[:1] in (" ", "\t") and current:
            name, value = current[-1]
            current[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            current.append((name.strip().lower(), value.strip()))
    if current:
        blocks.append(current)
    return blocks


def _field_blocks(part: email.message.Message) -> list[list[tuple[str, str]]]:
    """The field blocks of a delivery-status or feedback-report part, however it parsed."""
    try:
        payload = part.get_payload()
    except Exception:
        return []
    if isinstance(payload, list):
        blocks = []
        for sub in payload:
            if isinstance(sub, email.message.Message):
                try:
                    blocks.append([(str(k).lower(), _text(v)) for k, v in sub.items()])
                except Exception:
                    continue
        return [b for b in blocks if b]
    return _parse_fields(_part_text(part))


def _get(block: list[tuple[str, str]], name: str) -> str:
    for key, value in block:
        if key == name:
            return value
    return ""


def _after_type(value: str) -> str:
    """'rfc822; a@b' -> 'a@b'; 'smtp; 550 ...' -> '550 ...'."""
    kind, sep, rest = value.partition(";")
    return rest.strip() if sep and len(kind) < 20 and " " not in kind.strip() else value.strip()


def _clip(text: str | None) -> str | None:
    if not text:
        return None
    clean = _WS_RE.sub(" ", text).strip()
    return clean[:_MAX_DIAG] or None


# --------------------------------------------------------------------------- main parts


@dataclass(slots=True)
class _Parsed:
    msg: email.message.Message
    parts: list[_Part]
    subject: str
    from_addr: str | None
    to_header: str


def _original_headers(parsed: _Parsed, notice: str) -> dict[str, str]:
    """Selected headers of the returned original: attached part, else quoted text."""
    source: email.message.Message | None = None
    for part, ctype, _inside in parsed.parts:
        if ctype in ("message/rfc822", "message/global"):
            try:
                inner = part.get_payload()
            except Exception:
                inner = None
            if isinstance(inner, list) and inner and isinstance(inner[0], email.message.Message):
                source = inner[0]
                break
        if ctype in ("text/rfc822-headers", "text/rfc822-header"):
            source = _header_parse(_part_text(part))
            break
    if source is None and notice:
        m = _ORIGINAL_MARK_RE.search(notice)
        if m:
            rest = notice[m.end() :].split("\n", 1)[-1].lstrip("\r\n")
            source = _header_parse(rest)
    if source is None:
        return {}
    out: dict[str, str] = {}
    try:
        keys = list(source.keys())[:200]
    except Exception:
        return {}
    for key in keys:
        low = str(key).lower()
        kept = low in _KEPT_ORIGINAL or low.startswith("x-lunamail-")
        if (kept or low == "x-hmxmroriginalrecipient") and low not in out:
            out[low] = _header(source, str(key))
    return out


def _header_parse(text: str) -> email.message.Message | None:
    try:
        msg = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text[:_MAX_TEXT])
    except Exception:
        return None
    try:
        return msg if len(msg.keys()) else None
    except Exception:
        return None


def _notice_text(parsed: _Parsed) -> str:
    """The human-readable notification: text parts outside the attached original,
    HTML stripped when there is no plain text."""
    plain: list[str] = []
    htmls: list[str] = []
    for part, ctype, inside in parsed.parts:
        if inside:
            continue
        if ctype == "text/plain":
            plain.append(_part_text(part))
        elif ctype == "text/html":
            htmls.append(_part_text(part))
        if sum(map(len, plain)) > _MAX_TEXT:
            break
    if plain:
        return "\n".join(plain)[:_MAX_TEXT]
    if htmls:
        return html.unescape(_TAG_RE.sub(" ", "\n".join(htmls)))[:_MAX_TEXT]
    return ""


def _text_blocks(notice: str, exclude: set[str]) -> dict[str, list[str]]:
    """Recipient -> diagnostic lines, from the plain-text layouts MTAs use: an address
    alone on a line (optionally <bracketed> and/or followed by ':' and text), then the
    lines up to the next blank line or address line."""
    head = notice
    m = _ORIGINAL_MARK_RE.search(notice)
    if m:
        head = notice[: m.start()]
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    for line in head.splitlines()[:5000]:
        if not line.strip():
            current = None
            continue
        am = (_ADDR_LINE_RE.match(line) or _LABEL_ADDR_RE.match(line)) if len(line) < 400 else None
        if am:
            addr = am.group(1).strip(".").lower()
            if addr not in exclude and not _is_daemon(addr) and not _verp_in(addr):
                current = addr
                lines = blocks.setdefault(addr, [])
                if am.lastindex and am.lastindex >= 2 and am.group(2):
                    lines.append(am.group(2))
                if len(blocks) >= _MAX_RECIPIENTS:
                    break
                continue
        if current is not None:
            blocks[current].append(line.strip())
    return blocks


def _diagnostic_from(lines: list[str]) -> str | None:
    joined = " ".join(lines)
    remote = _REMOTE_RE.search(joined)
    if remote:
        return _clip(remote.group(1))
    return _clip(joined.strip("# "))


def _dsn(parsed: _Parsed, out: Classification) -> bool:
    """RFC 3464 delivery-status parts.  False when there are none with recipients."""
    groups: list[list[tuple[str, str]]] = []
    per_message: list[tuple[str, str]] = []
    for part, ctype, inside in parsed.parts:
        if inside:
            continue
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            blocks = _field_blocks(part)
            for block in blocks:
                if _get(block, "final-recipient") or _get(block, "original-recipient"):
                    groups.append(block)
                elif not per_message:
                    per_message = block
    if not groups:
        return False
    reports: list[RecipientReport] = []
    for block in groups[:_MAX_RECIPIENTS]:
        rcpt = _first_address(_after_type(_get(block, "original-recipient"))) or _first_address(
            _after_type(_get(block, "final-recipient"))
        )
        if not rcpt:
            continue
        action = _get(block, "action").lower().split(" ")[0] or None
        diag = _clip(_after_type(_get(block, "diagnostic-code")))
        status = status_of(_get(block, "status"), diag)
        if action is None:
            action = "failed" if status and status[0] == "5" else None
        btype = bounce_type_for(status, diag) if action == "failed" else None
        reports.append(RecipientReport(rcpt, action, status, diag, btype))
    failed = [r for r in reports if r.action == "failed"]
    delayed = [r for r in reports if r.action == "delayed"]
    chosen = failed or delayed
    if not reports:
        return False
    out.details = reports
    if failed:
        out.kind = "bounce"
        types = {r.bounce_type for r in failed}
        out.bounce_type = "hard" if "hard" in types else "soft" if "soft" in types else "sender"
    elif delayed:
        out.kind = "delay"
    else:
        out.kind = "other"
        chosen = reports
    first = next((r for r in chosen if r.bounce_type == out.bounce_type), chosen[0])
    out.recipients = [r.email for r in chosen]
    out.status, out.diagnostic, out.action = first.status, first.diagnostic, first.action
    if not out.original_message_id:
        out.original_message_id = _get(per_message, "x-original-message-id") or None
    if not out.verp:
        out.verp = _verp_in(_get(per_message, "x-postfix-sender"))
    return True


def _arf(parsed: _Parsed, out: Classification) -> bool:
    """RFC 5965 feedback reports."""
    report: list[tuple[str, str]] | None = None
    for part, ctype, inside in parsed.parts:
        if not inside and ctype == "message/feedback-report":
            blocks = _field_blocks(part)
            report = [kv for block in blocks for kv in block]
            break
    if report is None:
        return False
    ftype = (_get(report, "feedback-type") or "abuse").strip().lower()
    out.feedback_type = ftype
    out.kind = "complaint" if ftype in _COMPLAINT_TYPES else "other"
    rcpts: list[str] = []
    for key, value in report:
        if key in ("original-rcpt-to", "removal-recipient"):
            rcpts.extend(a for a in _addresses(value) if a not in rcpts)
    if not rcpts:
        orig = out.original_headers
        rcpts = _addresses(orig.get("x-hmxmroriginalrecipient", "")) or _addresses(
            orig.get("to", "")
        )
    out.recipients = rcpts[:_MAX_RECIPIENTS]
    if not out.verp:
        out.verp = _verp_in(_get(report, "original-mail-from"))
    return True


def _auto_reply(parsed: _Parsed) -> bool:
    msg = parsed.msg
    auto = _header(msg, "Auto-Submitted").lower()
    if auto and not auto.startswith("no"):
        return True
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"):
        if _header(msg, name):
            return True
    if _header(msg, "Precedence").lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT_RE.match(parsed.subject))


def _looks_like_bounce(parsed: _Parsed, notice: str) -> bool:
    if _is_daemon(parsed.from_addr) or _header(parsed.msg, "X-Failed-Recipients"):
        return True
    if _BOUNCE_SUBJECT_RE.search(parsed.subject) and not _AUTO_SUBJECT_RE.match(parsed.subject):
        return True
    return bool(_BOUNCE_BODY_RE.search(notice[:20000]))


def _prose_addresses(head: str, exclude: set[str]) -> list[str]:
    """Addresses written inside the notice's sentences ("Your message to x@y couldn't be
    delivered"), for notices that never put the recipient on a line of its own."""
    found: list[str] = []
    for addr in _addresses(head):
        if addr not in exclude and addr not in found and not _is_daemon(addr) and not _verp_in(addr):
            found.append(addr)
    return found


def _text_bounce(parsed: _Parsed, notice: str, out: Classification) -> None:
    exclude = {a for a in _addresses(parsed.to_header)}
    if parsed.from_addr:
        exclude.add(parsed.from_addr)
    # The original's own sender side is never the failed recipient.
    for name in ("from", "return-path", "reply-to", "sender"):
        exclude.update(_addresses(out.original_headers.get(name, "")))
    blocks = _text_blocks(notice, exclude)
    failed_hdr = [a for v in _headers_all(parsed.msg, "X-Failed-Recipients") for a in _addresses(v)]
    for addr in failed_hdr:
        blocks.setdefault(addr, [])
    head = notice
    m = _ORIGINAL_MARK_RE.search(notice)
    if m:
        head = notice[: m.start()]
    if not blocks:
        for addr in _prose_addresses(head, exclude)[:_MAX_RECIPIENTS]:
            blocks[addr] = []
    delay = bool(
        (_DELAY_SUBJECT_RE.search(parsed.subject) or _DELAY_BODY_RE.search(head[:20000]))
        and not _FINAL_FAILURE_RE.search(head[:20000])
        and not failed_hdr
    )
    reports = []
    for addr, lines in list(blocks.items())[:_MAX_RECIPIENTS]:
        diag = _diagnostic_from(lines)
        status = status_of(diag)
        reports.append(RecipientReport(addr, "delayed" if delay else "failed", status, diag, None))
    if reports and all(not r.diagnostic or not (r.status or basic_code(r.diagnostic)) for r in reports):
        # No per-recipient reason: the whole notice is the diagnostic for everyone.
        whole = _clip(head)
        for r in reports:
            if not r.diagnostic or not status_of(r.diagnostic):
                r.diagnostic, r.status = whole, status_of(whole)
    if reports and failed_hdr:
        # X-Failed-Recipients is authoritative about who failed when present.
        named = [r for r in reports if r.email in failed_hdr]
        reports = named or reports
    out.details = reports
    out.recipients = [r.email for r in reports]
    if delay:
        out.kind = "delay"
        if reports:
            out.status, out.diagnostic, out.action = reports[0].status, reports[0].diagnostic, "delayed"
        return
    # Judge by the recipient's own block; without one, by the whole notice.
    for r in reports:
        r.bounce_type = bounce_type_for(r.status, r.diagnostic or head[:4000])
    out.kind = "bounce"
    if reports:
        first = next((r for r in reports if r.status), reports[0])
        out.status, out.diagnostic, out.action = first.status, first.diagnostic, "failed"
        types = {r.bounce_type for r in reports}
        out.bounce_type = "hard" if "hard" in types else "soft" if "soft" in types else "sender"
    else:
        out.status = status_of(head)
        out.diagnostic = _clip(head[:_MAX_DIAG])
        out.bounce_type = bounce_type_for(out.status, head[:4000])


def _ms_complaint(parsed: _Parsed, out: Classification) -> bool:
    """Microsoft's older junk-mail reports: not ARF, the reported original attached, its
    recipient in the copy's X-HmXmrOriginalRecipient (else its To)."""
    frm = parsed.from_addr or ""
    if not (_MS_COMPLAINT_SUBJECT_RE.match(parsed.subject) or _MS_FBL_DOMAIN_RE.search(frm.partition("@")[2])):
        return False
    if _is_daemon(frm) or not any(c in ("message/rfc822", "message/global") for _, c, _ in parsed.parts):
        return False
    orig = out.original_headers
    rcpts = _addresses(orig.get("x-hmxmroriginalrecipient", "")) or _addresses(orig.get("to", ""))
    if not rcpts:
        return False
    out.kind, out.feedback_type = "complaint", "abuse"
    out.recipients = rcpts[:_MAX_RECIPIENTS]
    return True


def _classify(raw: bytes, envelope_to: str | None) -> Classification:
    if isinstance(raw, bytearray | memoryview):
        raw = bytes(raw)
    elif isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    elif not isinstance(raw, bytes):
        return Classification(verp=_verp_in(envelope_to or ""))
    raw = raw[:MAX_BYTES]
    try:
        if raw.lower().count(b"boundary=") > _MAX_PARTS:
            raise RecursionError("too many multipart levels to be real feedback")
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        # Absurd MIME nesting: the stdlib parser recurses per level (and slowly).  Keep
        # the headers (enough for auto-replies and the VERP address), drop the body.
        msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    parsed = _Parsed(
        msg=msg,
        parts=_walk(msg),
        subject=_header(msg, "Subject"),
        from_addr=_first_address(_header(msg, "From")),
        to_header=_header(msg, "To"),
    )
    out = Classification(subject=parsed.subject or None)
    for candidate in (
        envelope_to or "",
        *_headers_all(msg, "Delivered-To"),
        _header(msg, "X-Original-To"),
        _header(msg, "Envelope-To"),
        parsed.to_header,
    ):
        out.verp = _verp_in(candidate)
        if out.verp:
            break
    notice = _notice_text(parsed)
    out.original_headers = _original_headers(parsed, notice)
    out.original_message_id = out.original_headers.get("message-id") or None

    if not _arf(parsed, out) and not _dsn(parsed, out) and not _ms_complaint(parsed, out):
        if _looks_like_bounce(parsed, notice):
            _text_bounce(parsed, notice, out)
        elif _auto_reply(parsed):
            out.kind = "auto-reply"
            out.recipients = [parsed.from_addr] if parsed.from_addr else []

    if not out.original_message_id:
        refs = _header(parsed.msg, "In-Reply-To") or _header(parsed.msg, "References")
        ids = re.findall(r"<[^<>\s]{1,250}>", refs)
        out.original_message_id = ids[-1] if ids else None
    if not out.verp:
        out.verp = _verp_in(out.original_headers.get("return-path", ""))
    return out


def classify(raw: bytes, envelope_to: str | None = None) -> Classification:
    """Classify one raw inbound feedback message.  Never raises: anything that cannot
    be understood is ``kind="other"`` (the raw mail is kept elsewhere for replay)."""
    try:
        return _classify(raw, envelope_to)
    except Exception:
        try:
            return Classification(verp=_verp_in(envelope_to or ""))
        except Exception:
            return Classification()
