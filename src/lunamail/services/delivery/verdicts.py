"""A relay's permanent refusal of a recipient during the SMTP transaction (``550 5.1.1 user
unknown``) is a hard bounce, just like the report that arrives later for mail accepted
first: it becomes a ``Bounced`` event, so the address is suppressed and counted.

Read with the same classifier as bounce reports (:mod:`lunamail.lib.bounces`): only a
recipient problem is hard.  A refusal that judges the sender (``5.7.x`` policy,
authentication, reputation, a rate limit) never suppresses anyone; the guard counts those
per receiving domain from ``BatchSent``.
"""

from __future__ import annotations

from collections.abc import Iterable

from lunamail.domain.feedback import Bounced
from lunamail.lib.bounces import bounce_type_for, status_of

MAX_DIAGNOSTIC = 500


def refusal_bounces(account: str, campaign: str, refused: Iterable[tuple[str, int, str]],
                    at: float) -> list[Bounced]:
    """``Bounced(hard)`` for each ``(email, code, reply)`` refused for good for a recipient
    reason.  The id is per campaign and address, so a batch run twice counts once."""
    out = []
    for email, code, reply in refused:
        if not 500 <= int(code or 0) < 600:
            continue  # a temporary failure that ran out of attempts says nothing certain
        status = status_of(reply)
        if bounce_type_for(status, reply) != "hard":
            continue
        out.append(Bounced(account=account, campaign=campaign, email=email, bounce_type="hard",
                           status=status or str(code), diagnostic=reply[:MAX_DIAGNOSTIC], source="smtp",
                           at=at, id=f"smtp:{campaign}:{email}"))
    return out
