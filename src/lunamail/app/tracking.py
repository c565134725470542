"""The public use cases behind a message's links: an open, a click, the unsubscribe page
(and one-click unsubscribe) and the web view.

No actor: the signed token in the link is the authority, checked by the tracking service
before anything is read or written.  These stay thin on purpose (a pixel is the hottest
path there is); they exist so that every door reaches behaviour through this layer.
"""

from __future__ import annotations

from lunamail.domain.tracking import (
    Clicked,
    Opened,
    Unsubscribed,
    UnsubscribeMethod,
    UnsubscribeScope,
)
from lunamail.ports.deps import Deps
from lunamail.services.tracking import api as tracking_api
from lunamail.services.tracking import pages

Hit = tracking_api.Hit
UnsubscribeTarget = tracking_api.UnsubscribeTarget

#: The small public pages the links answer with (confirm, done, not found, unavailable).
confirm_page = pages.confirm_page
done_page = pages.done_page
not_found_page = pages.not_found_page
unavailable_page = pages.unavailable_page


def record_open(deps: Deps, token: str, hit: Hit) -> Opened | None:
    """The open a pixel fetch means, or None for a forged, stale or machine fetch."""
    return tracking_api.record_open(deps, token, hit)


def record_click(deps: Deps, token: str, hit: Hit) -> Clicked | None:
    """The click (with its target URL) a link fetch means, or None for a forged token."""
    return tracking_api.record_click(deps, token, hit)


def unsubscribe_target(deps: Deps, token: str) -> UnsubscribeTarget | None:
    """Who an unsubscribe link is for, or None for a forged or stale one."""
    return tracking_api.unsubscribe_target(deps, token)


def unsubscribe(
    deps: Deps, target: UnsubscribeTarget, *, scope: UnsubscribeScope, method: UnsubscribeMethod
) -> Unsubscribed:
    """Unsubscribe the link's recipient from its list or the whole account."""
    return tracking_api.unsubscribe(deps, target, scope=scope, method=method)


def web_view(deps: Deps, token: str) -> str | None:
    """The message as the recipient got it, inert, or None when it cannot be shown."""
    return tracking_api.web_view(deps, token)
