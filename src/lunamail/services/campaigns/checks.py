"""Pre-send checks and the content handed to delivery.

Kept apart from the API so the queue handler and the synchronous calls run
the very same checks.  No I/O: everything comes from the campaign itself
(whether the audience is empty is known only to the caller, who can count).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lunamail.domain.campaign_model import Campaign
from lunamail.lib import emails
from lunamail.lib.templating import CompiledCampaign, TemplateProblem, compile_campaign

UNSUBSCRIBE_HINT = '<a href="{{ unsubscribe_url }}">Unsubscribe</a>'


def compile_or_reason(c: Campaign) -> tuple[CompiledCampaign | None, str]:
    """The compiled templates, or None and the reason they do not compile."""
    try:
        return compile_campaign(c.subject, c.html, c.text), ""
    except TemplateProblem as e:
        where = f", line {e.line}" if e.line else ""
        return None, f"template error in the {e.part}{where}: {e.message}"


def sender_problems(c: Campaign) -> list[str]:
    """What is wrong with the From/Reply-To (needed even for a test send)."""
    out: list[str] = []
    if not c.from_email.strip():
        out.append("no From address")
    else:
        ok, why = emails.check(c.from_email)
        if ok is None:
            out.append(f"the From address {c.from_email!r} is not valid: {why}")
    if "\r" in c.from_name or "\n" in c.from_name:
        out.append("the From name must be a single line")
    if c.reply_to.strip():
        ok, why = emails.check(c.reply_to)
        if ok is None:
            out.append(f"the Reply-To address {c.reply_to!r} is not valid: {why}")
    return out


def lock_problem(sending_lock: str | None) -> list[str]:
    """The reason to refuse a send while the account's sending is locked ([] when not)."""
    return [] if sending_lock is None else [f"sending is locked for this account: {sending_lock}"]


def pre_send_problems(
    c: Campaign, *, audience_size: int | None = None, sending_lock: str | None = None,
    from_problems: Sequence[str] = (),
) -> tuple[list[str], CompiledCampaign | None]:
    """Every reason the campaign may not be sent (empty = good to go), and the compiled
    templates when they compile.  ``sending_lock`` is the reason the account is locked
    (read by the caller from the projection), None when it may send; ``from_problems`` what
    the caller found wrong with the From's sending domain (delivery owns those)."""
    reasons = lock_problem(sending_lock)
    reasons.extend(sender_problems(c))
    if c.from_email.strip() and not sender_problems(c):
        reasons.extend(from_problems)
    if not c.subject.strip():
        reasons.append("no subject")
    if not c.lists:
        reasons.append("no audience: choose at least one list")
    elif audience_size == 0:
        reasons.append("the audience has no subscribers")
    compiled, why = compile_or_reason(c)
    if compiled is None:
        reasons.append(why)
        return reasons, None
    if not compiled.unsubscribe_link:
        reasons.append(f"the HTML has no unsubscribe link: add {UNSUBSCRIBE_HINT}")
    # A text derived from an HTML without the link is fixed by fixing the HTML: one reason.
    if not compiled.uses("text", "unsubscribe_url") and (
        compiled.unsubscribe_link or not compiled.text_generated
    ):
        if compiled.text_generated:
            reasons.append(
                "the text generated from the HTML has no unsubscribe link:"
                " put {{ unsubscribe_url }} in a link's href"
            )
        else:
            reasons.append("the text part has no unsubscribe link: add {{ unsubscribe_url }}")
    return reasons, compiled


def delivery_content(c: Campaign, compiled: CompiledCampaign) -> dict[str, Any]:
    """Everything delivery needs to render and send, so it never reads our items.  The text
    is the author's or the one generated from the HTML (generated once, here)."""
    return {
        "name": c.name,
        "subject": c.subject,
        "html": c.html,
        "text": compiled.text_source,
        "from_name": c.from_name,
        "from_email": c.from_email.strip(),
        "reply_to": c.reply_to.strip(),
        "headers": dict(c.headers),
        "track_opens": c.track_opens,  # None: delivery applies the installation's default
        "track_clicks": c.track_clicks,
        "attachments": [a.to_dict() for a in c.attachments],
    }
