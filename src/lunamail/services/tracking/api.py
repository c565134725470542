"""What the public tracking routes do: check the signed token, classify, build the event.

Every function takes the raw token from the URL and returns None (or nothing to
publish) when it is forged, tampered with, expired or malformed, so a route can
answer 404 without knowing why.  Nothing here writes items: opens, clicks and
unsubscribes are events, and the services that care (reports, audience) keep
their own state from them.

Settings: ``tracking_link_max_age_days`` refuses click and
open links older than that many days even when their token carries no expiry
(default: none, links in old mails keep working); ``bot_click_window_seconds``
is the machine-click window of :func:`lunamail.lib.bots.classify` (default 10).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lunamail.domain.tracking import (
    Clicked,
    Opened,
    Unsubscribed,
    UnsubscribeMethod,
    UnsubscribeScope,
)
from lunamail.lib import bots, tokens, tracklinks
from lunamail.lib.templating import (
    CompiledCampaign,
    RenderBound,
    RenderProblem,
    TemplateProblem,
    compile_campaign,
)
from lunamail.ports.deps import Deps
from lunamail.services.tracking.keys import CONTENT_SK, campaign_pk

log = logging.getLogger("lunamail.tracking")

_DAY = 86400.0

# Event ids: a random per-process prefix and a counter.  Unique like a uuid4 (a new prefix
# per process start), at a fraction of its cost on the hot path (no syscall per event).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def _new_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


def _reseed_ids() -> None:
    """A forked child must not reuse its parent's prefix (same counter, same ids)."""
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = os.urandom(8).hex()
    _ID_COUNTER = itertools.count()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_ids)


@dataclass(frozen=True, slots=True)
class Hit:
    """What the classifier needs to know about one request."""

    method: str
    user_agent: str
    ip: str
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class UnsubscribeTarget:
    """Who an unsubscribe link is for; ``list`` is ``""`` when the link names none."""

    account: str
    campaign: str
    list: str
    email: str
    sender: str  # the From name (or address) of the campaign, for the page; may be ""


# ---------------------------------------------------------------- opens and clicks


def _max_age(deps: Deps) -> float | None:
    days = deps.settings.tracking_link_max_age_days
    return float(days) * _DAY if days else None


def _too_old(deps: Deps, sent_at: int, now: float) -> bool:
    max_age = _max_age(deps)
    return max_age is not None and now - sent_at > max_age


def _track_key(deps: Deps) -> Callable[[str], bytes]:
    secrets = deps.secrets
    return lambda account: secrets.key(account, tokens.TRACK)


def record_open(deps: Deps, token: str, hit: Hit) -> Opened | None:
    """The ``Opened`` event of a pixel fetch (token without ``.gif``), or None if invalid."""
    now = deps.clock.now()
    found = tracklinks.read_open(_track_key(deps), token, now=now)
    if found is None or _too_old(deps, found.sent_at, now):
        return None
    machine, reason = bots.classify(
        method=hit.method, user_agent=hit.user_agent, ip=hit.ip,
        seconds_since_send=now - found.sent_at, kind="open", headers=hit.headers,
    )
    return Opened(account=found.account, campaign=found.campaign, email=found.email,
                  machine=machine, reason=reason, at=now, id=_new_id())


def record_click(deps: Deps, token: str, hit: Hit) -> Clicked | None:
    """The ``Clicked`` event of a click (its ``url`` is where to redirect), or None if invalid."""
    now = deps.clock.now()
    found = tracklinks.read_click(_track_key(deps), token, now=now)
    if found is None or _too_old(deps, found.sent_at, now):
        return None
    window = float(deps.settings.bot_click_window_seconds)
    machine, reason = bots.classify(
        method=hit.method, user_agent=hit.user_agent, ip=hit.ip,
        seconds_since_send=now - found.sent_at, kind="click", headers=hit.headers,
        click_window=window,
    )
    return Clicked(account=found.account, campaign=found.campaign, email=found.email,
                   link=found.link, url=found.url, machine=machine, reason=reason, at=now,
                   id=_new_id())


# ---------------------------------------------------------------- unsubscribe


def _content(deps: Deps, account: str, campaign: str) -> dict[str, Any] | None:
    return deps.store.get(campaign_pk(account, campaign), CONTENT_SK)


def unsubscribe_target(deps: Deps, token: str) -> UnsubscribeTarget | None:
    """Whom an unsubscribe token names, or None when it is not authentic.  Changes nothing."""
    secrets = deps.secrets
    found = tokens.read_token(lambda a: secrets.key(a, tokens.UNSUBSCRIBE), token,
                              now=deps.clock.now())
    fields = tokens.fields_match(found, "u", 3)
    if found is None or fields is None:
        return None
    campaign, list_id, email = fields
    item = _content(deps, found[0], campaign)
    content: Mapping[str, Any] = (item or {}).get("content") or {}
    sender = str(content.get("from_name") or content.get("from_email") or "")
    return UnsubscribeTarget(found[0], campaign, list_id, email, sender)


def unsubscribe(
    deps: Deps, target: UnsubscribeTarget, *, scope: UnsubscribeScope, method: UnsubscribeMethod
) -> Unsubscribed:
    """The ``Unsubscribed`` event for a target read by :func:`unsubscribe_target`.  A link that
    names no list can only unsubscribe from all lists.  Publishing it twice is harmless (the
    audience treats unsubscribed as a state, not a toggle)."""
    if not target.list:
        scope = "all"
    return Unsubscribed(account=target.account, campaign=target.campaign, list=target.list,
                        email=target.email, scope=scope, method=method, at=deps.clock.now())


# ---------------------------------------------------------------- web view

_CompiledKey = tuple[str, str, str, str, str | None]
_COMPILED: OrderedDict[_CompiledKey, CompiledCampaign] = OrderedDict()
_COMPILED_LOCK = threading.Lock()
_COMPILED_SIZE = 32


def _key(account: str, campaign: str, content: Mapping[str, Any]) -> _CompiledKey:
    text = content.get("text") or None
    return (account, campaign, str(content.get("subject", "")), str(content.get("html", "")),
            None if text is None else str(text))


def _compiled(account: str, campaign: str, content: Mapping[str, Any]) -> CompiledCampaign:
    """Compile a campaign once per process (an LRU of recent ones), as delivery does.  The key
    holds the sources themselves, so changed content can never hit a stale entry."""
    key = _key(account, campaign, content)
    with _COMPILED_LOCK:
        found = _COMPILED.get(key)
        if found is not None:
            _COMPILED.move_to_end(key)
            return found
    compiled = compile_campaign(key[2], key[3], key[4])
    with _COMPILED_LOCK:
        _COMPILED[key] = compiled
        while len(_COMPILED) > _COMPILED_SIZE:
            _COMPILED.popitem(last=False)
    return compiled


def web_view(deps: Deps, token: str) -> str | None:
    """The campaign's HTML as this recipient's web view, or None (bad token, unknown campaign,
    or a template that no longer renders).

    The tracking service knows only the recipient's address (from the token), not their name
    or custom fields, so those render empty (or as the template's ``default``).  Links are not
    click-tracked here.  The unsubscribe link names the campaign's list when it went to one
    list; for several lists it names none, and the page then offers "all lists".
    """
    secrets = deps.secrets
    found = tokens.read_token(lambda a: secrets.key(a, tokens.VIEW), token, now=deps.clock.now())
    fields = tokens.fields_match(found, "v", 2)
    if found is None or fields is None:
        return None
    account = found[0]
    campaign, email = fields
    item = _content(deps, account, campaign)
    if item is None or not isinstance(item.get("content"), dict):
        return None
    content = item["content"]
    lists = item.get("lists") or []
    list_id = str(lists[0]) if len(lists) == 1 else ""
    base = deps.settings.base_url.rstrip("/")
    unsubscribe_url = f"{base}/u/" + tokens.make_token(
        secrets.key(account, tokens.UNSUBSCRIBE), account, "u", campaign, list_id, email)
    key = _key(account, campaign, content)
    with _COMPILED_LOCK:
        if key in _FAILED:
            return None
    try:
        rendered = _compiled(account, campaign, content).render(
            {"email": email, "name": "", "fields": {}},
            unsubscribe_url=unsubscribe_url,
            view_in_browser_url=f"{base}/v/{token}",
            campaign={"id": campaign, "name": content.get("name", ""),
                      "subject": content.get("subject", "")},
        )
    except (RenderProblem, ValueError) as exc:  # ValueError: TemplateProblem on compile
        log.warning("web view of campaign %s of account %s cannot render: %s", campaign, account, exc)
        if isinstance(exc, RenderBound | TemplateProblem):  # the next GET must not spend the
            _remember_failure(key)                           # budget again
        return None
    return _inert(rendered.html)


# Campaigns whose web view broke a render bound: answered "unavailable" at once from then on.
_FAILED: OrderedDict[_CompiledKey, None] = OrderedDict()
_FAILED_SIZE = 256
_META_REFRESH = re.compile(r"<meta\b[^>]*http-equiv\s*=\s*[\"']?\s*refresh[^>]*>", re.IGNORECASE)


def _remember_failure(key: _CompiledKey) -> None:
    with _COMPILED_LOCK:
        _FAILED[key] = None
        while len(_FAILED) > _FAILED_SIZE:
            _FAILED.popitem(last=False)


def _inert(html: str) -> str:
    """The web view may not redirect: ``<meta http-equiv="refresh">`` is removed (the page's
    CSP also sandboxes it, which stops scripts and automatic navigation)."""
    return _META_REFRESH.sub("", html) if "efresh" in html or "EFRESH" in html else html
