"""Whose fault a failed delivery is: the recipient's (hard), a passing problem (soft),
or the sender's (the receiver refused *us*).

Shared by the feedback parser (bounce reports) and the guard (replies refused at
send time), so both read an SMTP reply the same way.  Only a recipient problem
can be hard; see :func:`bounce_type_for`.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["BounceType", "basic_code", "bounce_type_for", "status_of"]

BounceType = Literal["hard", "soft", "sender"]
_MAX_SCAN = 4000

_ENHANCED_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_BASIC_RE = re.compile(r"(?<![\d.#])([45][0-5]\d)(?:[ -:]|$)")
_HARD_TEXT_RE = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address|person|account|local user)"
    r"|mailbox (?:unavailable|not found|does not exist|disabled|is disabled|inactive|has been disabled)"
    r"|(?:does not|doesn't|did not) exist|recipient not found|recipientnotfound|recipient unknown"
    r"|(?:invalid|unknown|bad|non-?existent) (?:recipient|address|mailbox|user)"
    r"|not a valid (?:mailbox|recipient|user)|is not a valid user|unknown local part"
    r"|account (?:has been |is )?(?:disabled|deactivated|closed|deleted|terminated)"
    r"|no mailbox here|doesn't have an? \S+ account|unrouteable address|user is unknown"
    r"|address couldn't be found|couldn't be found|user not found|addressee unknown"
    r"|unknown or illegal alias|no longer (?:available|active|in use|exists)"
    r"|host or domain name not found|no such domain|domain (?:not found|does not exist|name not found)"
    r"|not our customer|user doesn't exist|mailbox name not allowed|mail ?box is not exist"
    r"|recipient address rejected: access denied|recipient rejected|no valid recipients"
    r"|this user doesn't have|email account that you tried to reach (?:does not exist|is disabled)"
    r"|destination (?:mailbox|address) (?:does not exist|is invalid)"
    r"|recipient address rejected: (?:user unknown|undeliverable|unknown)",
    re.I,
)
_SOFT_TEXT_RE = re.compile(
    r"mailbox (?:is )?full|over ?quota|quota exceeded|exceeded (?:storage|.{0,20}quota)|full mailbox"
    r"|insufficient (?:storage|system storage)|out of storage|try again later|mailbox busy"
    r"|temporar(?:y|ily)|greylist|graylist|deferred|timed out|connection refused|resend your message"
    r"|delivery time expired|retry timeout exceeded|expired|could not be delivered within"
    r"|service (?:not available|unavailable)|system not accepting|too busy",
    re.I,
)
# What the receiver says about *us* (the sender, our IP, our domain, the message), never
# about the address: authentication, policy, reputation, block lists, rate limits,
# content, relay and loop problems.
_SENDER_TEXT_RE = re.compile(
    r"\bspf\b|\bdkim\b|\bdmarc\b|authenticat|not authori[sz]ed to send|sender (?:address )?rejected"
    r"|sender verify|sender (?:domain|address) (?:must|is|does)|sender denied|from address"
    r"|relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited)|not permitted to relay"
    r"|unable to relay|we do not relay|relay not allowed"
    r"|block ?list|black ?list|blocked|\bbanned\b|listed (?:at|on|in|by)|spamhaus|barracuda|spamcop"
    r"|\bsorbs\b|\brbl\b|\bdnsbl\b|reputation|\bspam\b|unsolicited|bulk mail|junk"
    r"|polic(?:y|ies)|rate limit|ratelimit|rate that prevents|unusual rate|unexpected volume|user complaints"
    r"|too many (?:messages|mails"
    r"|emails|connections|recipients|concurrent)|throttl|exceeded (?:the )?(?:sending|message) limit"
    r"|too many hops|hop count|mail loop|routing loop|loops back|loop detected"
    r"|content (?:rejected|filter|policy)|virus|malware|phish|attachment|message (?:too large|size exceeds)"
    r"|exceeds (?:the )?(?:maximum )?(?:message )?size|message length exceeds"
    r"|reverse dns|\bptr\b|\brdns\b|not accepted from this ip|your ip|ip address|client host"
    r"|\bhelo\b|\behlo\b|access denied|not allowed to send|restricted|prohibited",
    re.I,
)
# Phrases that name the sending side explicitly: they win over recipient wording.
_SENDER_EXPLICIT_RE = re.compile(
    r"sender (?:address )?rejected|sender verify|sender domain|from address|\bspf\b|\bdmarc\b|\bdkim\b"
    r"|unauthenticated|authentication (?:required|failed)|not authori[sz]ed to send",
    re.I,
)
_PERMANENT_RE = re.compile(r"permanent(?:ly)?|fatal", re.I)
def status_of(*texts: str | None) -> str | None:
    """The most specific enhanced status code found (x.0.0 yields to a detailed one)."""
    best: str | None = None
    for text in texts:
        if not text:
            continue
        for m in _ENHANCED_RE.finditer(text[: _MAX_SCAN]):
            code = ".".join(m.groups())
            if best is None or (best.endswith(".0.0") and code[0] == best[0] and code != best):
                best = code
            if not best.endswith(".0.0"):
                return best
    return best


def basic_code(text: str | None) -> str | None:
    if not text:
        return None
    m = _BASIC_RE.search(text[: _MAX_SCAN])
    return m.group(1) if m else None


def bounce_type_for(status: str | None, diagnostic: str | None) -> BounceType:
    """Hard, soft or sender-side for one failed recipient (the module docstring's policy):
    only a recipient problem can be hard; what judges the sender never suppresses."""
    text = diagnostic or ""
    hard_text = bool(_HARD_TEXT_RE.search(text))
    sender_text = bool(_SENDER_TEXT_RE.search(text))
    if _SENDER_EXPLICIT_RE.search(text):
        return "sender"
    if status and status[:1] in "45":
        _, subject, detail = [*status.split("."), "", ""][:3]
        if status[0] == "4":
            return "sender" if sender_text else "soft"
        if (subject, detail) in (("1", "7"), ("1", "8")):
            return "sender"  # our own envelope sender was refused
        if subject == "1" or (subject, detail) in (("2", "1"), ("4", "4")):
            if (subject, detail) == ("2", "1") and sender_text and not hard_text:
                return "sender"  # Gmail's "receiving mail at a rate that prevents ..."
            return "hard"
        if hard_text and (not sender_text or subject in ("1", "2", "4")):
            return "hard"
        if (subject, detail) in (("2", "2"), ("4", "7"), ("4", "1"), ("4", "2"), ("4", "3"),
                                 ("3", "1"), ("3", "2")):
            return "soft"
        if subject in ("6", "7", "5") or (subject, detail) in (("2", "3"), ("3", "4"), ("4", "6")):
            return "sender"
        if _SOFT_TEXT_RE.search(text) and not sender_text:
            return "soft"
        return "sender"  # a 5xx that does not say the address is bad: never suppress
    code = basic_code(text)
    if sender_text:
        return "sender"
    if code and code[0] == "4":
        return "soft"
    if hard_text:
        return "hard"
    if _SOFT_TEXT_RE.search(text):
        return "soft"
    return "sender" if code or _PERMANENT_RE.search(text) else "soft"
