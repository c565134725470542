"""Email address normalisation and a fast syntax check.

The check runs once per row of every import, so it is hand-written around two
compiled regular expressions instead of a general validator: an ASCII address
costs a split, a lower-case and two regex matches.  Its verdicts agree with
``email-validator`` (``check_deliverability=False``, ``allow_smtputf8=False``,
``strict=True``), which the tests use as the reference.

Policy: the local part is kept as typed and must be ASCII (most relays, SES
among them, do not accept SMTPUTF8 local parts); the domain is case-folded and
an internationalised domain is stored as punycode, so one mailbox has one key.
"""

from __future__ import annotations

import re

import idna

MAX_ADDRESS = 254
MAX_LOCAL = 64
MAX_DOMAIN = 253

_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_LOCAL_RE = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE = re.compile(rf"(?:{_LABEL}\.)+{_LABEL}")
# RFC 5890 reserves "??--" labels for IDNA; only "xn--" is meaningful.
# The common case in one match: an ASCII dot-atom local part and an ASCII hostname.
_FAST_RE = re.compile(
    rf"([{_ATEXT}]+(?:\.[{_ATEXT}]+)*)@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z])?)"
)
_RLDH_RE = re.compile(r"(?:^|\.)(?!xn)[a-z0-9]{2}--")
_SPECIAL_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})

ROLE_LOCALS = frozenset(
    {
        "abuse", "admin", "administrator", "billing", "compliance", "contact", "devnull",
        "dns", "ftp", "help", "hostmaster", "info", "inoc", "ispfeedback", "ispsupport",
        "list", "list-request", "mail", "maildaemon", "mailer-daemon", "marketing", "media",
        "news", "no-reply", "noc", "noreply", "null", "office", "orders", "phish", "phishing",
        "postmaster", "privacy", "registrar", "remove", "root", "sales", "security", "spam",
        "support", "sysadmin", "tech", "undisclosed-recipients", "unsubscribe", "usenet",
        "uucp", "webmaster", "www",
    }
)  # fmt: skip


class InvalidEmail(ValueError):
    """The address failed the syntax check; the message says why."""


def check(raw: str) -> tuple[str | None, str]:
    """``(normalised, "")`` for a valid address, ``(None, reason)`` otherwise.

    Returns instead of raising because the import hot path meets many bad rows.
    """
    s = raw.strip()
    m = _FAST_RE.fullmatch(s)
    if m is not None:
        local, domain = m.groups()
        if (
            len(local) <= MAX_LOCAL
            and len(s) <= MAX_ADDRESS
            and len(domain) <= MAX_DOMAIN
            and "--" not in domain
        ):
            domain = domain.lower()
            if domain[domain.rfind(".") + 1 :] not in _SPECIAL_TLDS:
                return f"{local}@{domain}", ""
    return _check_slow(s)


def _check_slow(s: str) -> tuple[str | None, str]:
    """Every case the fast match does not settle, with a reason for each rejection."""
    at = s.rfind("@")
    if at < 0:
        return None, "missing @" if s else "empty address"
    local = s[:at]
    if not local:
        return None, "nothing before the @"
    if len(local) > MAX_LOCAL:
        return None, "local part longer than 64 characters"
    if _LOCAL_RE.fullmatch(local) is None:
        if "@" in local:
            return None, "more than one @"
        return None, "invalid character or dot placement before the @"
    domain = s[at + 1 :]
    if not domain:
        return None, "nothing after the @"
    if domain.isascii():
        domain = domain.lower()
    else:
        domain, reason = _to_ascii(domain)
        if not domain:
            return None, reason
    if len(domain) > MAX_DOMAIN:
        return None, "domain longer than 253 characters"
    if _DOMAIN_RE.fullmatch(domain) is None:
        if "." not in domain:
            return None, "domain has no dot"
        return None, "invalid domain"
    tld = domain[domain.rfind(".") + 1 :]
    if not tld[-1].isalpha():
        return None, "top-level domain must end with a letter"
    if tld in _SPECIAL_TLDS:
        return None, "reserved domain that cannot receive mail"
    if "--" in domain:
        if _RLDH_RE.search(domain) is not None:
            return None, "invalid domain label ('--' in positions 3-4)"
        if "xn--" in domain:
            try:
                idna.decode(domain)
            except (idna.IDNAError, UnicodeError):
                return None, "invalid punycode domain"
    if len(local) + 1 + len(domain) > MAX_ADDRESS:
        return None, "address longer than 254 characters"
    return f"{local}@{domain}", ""


def _to_ascii(domain: str) -> tuple[str, str]:
    """IDN domain -> punycode (UTS 46 mapping, so case and full-width dots fold)."""
    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii"), ""
    except (idna.IDNAError, UnicodeError) as e:
        return "", f"invalid internationalised domain ({e})"


def normalize(raw: str) -> str:
    """The normalised address, or InvalidEmail with the reason (for single-address APIs)."""
    email, reason = check(raw)
    if email is None:
        raise InvalidEmail(reason)
    return email


def is_valid(raw: str) -> bool:
    return check(raw)[0] is not None


def is_role(email: str) -> bool:
    """A role mailbox (info@, noreply@...): accepted but flagged, they rarely engage."""
    local = email[: email.rfind("@")].lower()
    plus = local.find("+")
    if plus > 0:
        local = local[:plus]
    return local in ROLE_LOCALS


def domain_of(email: str) -> str:
    return email[email.rfind("@") + 1 :]
