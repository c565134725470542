"""Reading a campaign's report: a few item reads, never a scan of recipients.

The counters are one query (``STATS`` plus its shards) and one for the link URLs.
Recipient exports stream the ``U#`` markers page by page, so memory stays flat
however large the campaign.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

from lunamail.domain.feedback import sender_reason
from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import Item

from . import keys as k
from .keys import report_pk

__all__ = [
    "EXPORTS",
    "Which",
    "campaign_report",
    "export_recipients",
    "report_version",
    "timeseries",
    "unmapped_report",
]

Which = Literal["opened", "clicked", "non-openers", "bounced", "unsubscribed"]
EXPORTS: tuple[str, ...] = ("opened", "clicked", "non-openers", "bounced", "unsubscribed")
TS_FIELDS = ("sent", "failed", "delivered", "opens", "clicks", "bounces", "complaints", "unsubscribes")
_SHARD_PREFIX = f"{k.STATS}#"


def _stats_items(deps: Deps, account: str, campaign: str) -> list[Item]:
    """``STATS`` and its shards: one query (they share the ``STATS`` prefix)."""
    page = deps.store.query(report_pk(account, campaign), prefix=k.STATS, limit=k.SHARDS + 8)
    return page.items


def _sum_shards(items: Iterable[Item]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        if not str(item["sk"]).startswith(_SHARD_PREFIX):
            continue
        for name, value in item.items():
            if name not in ("pk", "sk") and isinstance(value, int | float) and not isinstance(value, bool):
                out[name] = out.get(name, 0) + int(value)
    return out


def _rate(part: int, whole: int) -> float:
    """A share in [0, 1], rounded; 0 when there is nothing to divide by.  Capped at 1
    because events of different consumers may briefly arrive out of order."""
    return round(min(part / whole, 1.0), 4) if whole > 0 else 0.0


def _links(deps: Deps, account: str, campaign: str, c: dict[str, int]) -> list[dict[str, Any]]:
    page = deps.store.query(report_pk(account, campaign), prefix=k.LINK, limit=1000)
    out = []
    for item in page.items:
        n = int(item["link"])
        total, unique = k.link_attrs(n)
        out.append({"link": n, "url": item.get("url", ""), "total": c.get(total, 0),
                    "unique": c.get(unique, 0), "machine": c.get(f"link_{n}_machine", 0)})
    return out


_MAX_REJECTING_DOMAINS = 10
# Where complaints came from, as a person reads it.
_COMPLAINT_SOURCES = {"arf": "fbl", "dsn": "fbl", "ses": "ses", "manual": "manual"}


def _rejected(c: Mapping[str, int]) -> list[dict[str, Any]]:
    """Sender-side rejections per receiving domain, most first, each with its status codes
    (most first) and what the top one means."""
    by_domain: dict[str, int] = {}
    statuses: dict[str, dict[str, int]] = {}
    for name, n in c.items():
        if not name.startswith(k.REJECTED) or n <= 0:
            continue
        domain, _, status = name[len(k.REJECTED):].partition("|")
        if status:
            statuses.setdefault(domain, {})[status] = n
        else:
            by_domain[domain] = n
    out = []
    for domain, n in sorted(by_domain.items(), key=lambda kv: (-kv[1], kv[0]))[:_MAX_REJECTING_DOMAINS]:
        codes = sorted(statuses.get(domain, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        top = codes[0][0] if codes and codes[0][0] != "-" else ""
        out.append({"domain": domain, "count": n, "status": top, "reason": sender_reason(top),
                    "statuses": dict(codes)})
    return out


def _complaint_sources(c: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, n in c.items():
        if name.startswith(k.COMPLAINT_SOURCE) and n > 0:
            label = _COMPLAINT_SOURCES.get(name[len(k.COMPLAINT_SOURCE):], "other")
            out[label] = out.get(label, 0) + n
    return out


def campaign_report(deps: Deps, account: str, campaign: str) -> dict[str, Any]:
    """Counters, status, progress and rates.  ``progress`` is the share of planned
    recipients with a final outcome; it reaches 1.0 only when planning is done.

    Rates are over ``delivered`` when the provider reports deliveries, else over ``sent``
    (SMTP relays report none); bounce rate is always over ``sent``.  Opens and clicks in
    rates are human ones; machine opens/clicks are reported apart.  ``bounced.total`` counts
    recipient bounces (hard + soft); sender-side rejections are ``bounced.sender`` and, per
    receiving domain, ``rejected``.  ``complaint_sources`` says where complaints came from
    (``fbl`` feedback-loop reports, ``ses``, ``manual``)."""
    items = _stats_items(deps, account, campaign)
    c = _sum_shards(items)
    report = _report_from(campaign, items, c)
    report["links"] = _links(deps, account, campaign, c)
    return report


def campaign_summaries(deps: Deps, account: str, campaigns: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The reports of many campaigns without their links (a listing's rows): one batched
    read of every campaign's ``STATS`` items, however many campaigns."""
    wanted = list(dict.fromkeys(campaigns))
    sks = [k.STATS, *(k.shard_sk(n) for n in range(k.SHARDS))]
    keys = [(report_pk(account, c), sk) for c in wanted for sk in sks]
    found = deps.store.get_many(keys) if keys else []
    by_campaign: dict[str, list[Item]] = {c: [] for c in wanted}
    for n, item in enumerate(found):
        if item is not None:
            by_campaign[wanted[n // len(sks)]].append(item)
    return {c: _report_from(c, items, _sum_shards(items)) for c, items in by_campaign.items()}


def _report_from(campaign: str, items: list[Item], c: dict[str, int]) -> dict[str, Any]:
    """A report (without links) from the campaign's ``STATS`` items and their summed shards."""
    s = next((i for i in items if i["sk"] == k.STATS), {})
    planned = int(s.get("planned", 0))
    sent, failed = int(s.get("sent", 0)), int(s.get("failed", 0))
    planning_done = bool(s.get("planning_done", False))
    done = sent + failed
    progress = (done / planned if planned else (1.0 if planning_done else 0.0))
    if not planning_done:
        progress = min(progress, 0.99)
    started, last = s.get("started_at"), s.get("finished_at") or s.get("last_batch_at")
    rate = sent / (float(last) - float(started)) if started and last and float(last) > float(started) else 0.0

    delivered = c.get("delivered", 0)
    hard, soft = c.get("bounced_hard", 0), c.get("bounced_soft", 0)
    bounced = hard + soft
    base = delivered or sent
    opened_unique, clicked_unique = c.get("opened_unique", 0), c.get("clicked_unique", 0)
    complained, unsubscribed = c.get("complained", 0), c.get("unsubscribed", 0)
    return {
        "campaign": campaign,
        "status": s.get("status", "unknown"),
        "name": s.get("name", ""),
        "subject": s.get("subject", ""),
        "planned": planned,
        "planning_done": planning_done,
        "sent": sent,
        "deferred": max(0, int(s.get("deferred", 0))),
        "failed": failed,
        "skipped": int(s.get("skipped", 0)),
        "progress": round(min(progress, 1.0), 4),
        "started_at": started,
        "finished_at": s.get("finished_at"),
        "send_rate": round(rate, 1),
        "delivered": delivered,
        "bounced": {"hard": hard, "soft": soft, "sender": c.get("bounced_sender", 0), "total": bounced},
        "rejected": _rejected(c),
        "complained": complained,
        "complaint_sources": _complaint_sources(c),
        "opened": {"unique": opened_unique, "total": c.get("opened_total", 0),
                   "machine": c.get("opened_machine", 0),
                   "machine_unique": c.get("opened_machine_unique", 0)},
        "clicked": {"unique": clicked_unique, "total": c.get("clicked_total", 0),
                    "machine": c.get("clicked_machine", 0),
                    "machine_unique": c.get("clicked_machine_unique", 0)},
        "unsubscribed": unsubscribed,
        "rates": {
            "delivery_rate": _rate(delivered, sent) if delivered else _rate(max(sent - bounced, 0), sent),
            "bounce_rate": _rate(bounced, sent),
            "complaint_rate": _rate(complained, base),
            "open_rate": _rate(opened_unique, base),
            "click_rate": _rate(clicked_unique, base),
            "click_to_open_rate": _rate(clicked_unique, opened_unique),
            "unsubscribe_rate": _rate(unsubscribed, base),
        },
    }


def unmapped_report(deps: Deps, account: str) -> dict[str, Any]:
    """Feedback and tracking events of the account that named no campaign."""
    return campaign_report(deps, account, "")


def report_version(deps: Deps, account: str, campaign: str) -> tuple[Any, ...]:
    """Changes whenever any counter or the status changes (each write bumps its item's
    ``v``): a poller compares it and pushes a new report only on change.  One query."""
    return tuple((i["sk"], int(i.get("v", 0))) for i in _stats_items(deps, account, campaign))


def timeseries(deps: Deps, account: str, campaign: str, limit: int = 1000,
               *, since: float | None = None) -> list[dict[str, Any]]:
    """Per-minute counters (``TS_FIELDS``), oldest first, at most ``limit`` minutes from
    ``since`` (epoch seconds).  Sharded minute items are summed here."""
    pk = report_pk(account, campaign)
    start = k.ts_sk(k.minute_of(since)) if since is not None else None
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        if start is not None:
            page = deps.store.query(pk, start=start, end=f"{k.TS}~", limit=1000, cursor=cursor)
        else:
            page = deps.store.query(pk, prefix=k.TS, limit=1000, cursor=cursor)
        for item in page.items:
            minute = int(item.get("minute", 0))
            if not out or out[-1]["minute"] != minute:
                if len(out) >= limit:
                    return out
                out.append({"minute": minute, **dict.fromkeys(TS_FIELDS, 0)})
            row = out[-1]
            for name in TS_FIELDS:
                row[name] += int(item.get(name, 0))
        cursor = page.cursor
        if cursor is None:
            return out


# ---------------------------------------------------------------- exports


def _emails(deps: Deps, pk: str, kind: str, page_size: int) -> Iterator[tuple[str, Item]]:
    """(email, marker) in address order, one page in memory at a time."""
    prefix = k.marker_prefix(kind)
    cut = len(prefix)
    cursor: str | None = None
    while True:
        page = deps.store.query(pk, prefix=prefix, limit=page_size, cursor=cursor)
        for item in page.items:
            yield str(item["sk"])[cut:], item
        cursor = page.cursor
        if cursor is None:
            return


def _union(*streams: Iterator[tuple[str, Item]]) -> Iterator[tuple[str, Item]]:
    """Merge sorted streams, each address once (the first stream's marker wins)."""
    last: str | None = None
    for email, _n, item in heapq.merge(*(((e, n, i) for e, i in s) for n, s in enumerate(streams)),
                                       key=lambda t: (t[0], t[1])):
        if email != last:
            last = email
            yield email, item


def _minus(left: Iterator[tuple[str, Item]], right: Iterator[tuple[str, Item]]
           ) -> Iterator[tuple[str, Item]]:
    """Addresses of sorted ``left`` not in sorted ``right``: one pass over both."""
    pending = next(right, None)
    for email, item in left:
        while pending is not None and pending[0] < email:
            pending = next(right, None)
        if pending is None or pending[0] != email:
            yield email, item


def export_recipients(deps: Deps, account: str, campaign: str, which: str,
                      *, page_size: int = 500) -> Iterator[dict[str, Any]]:
    """Stream the recipients of one outcome, in address order, as ``{"email", ...}``.

    ``non-openers``: sent to, with neither a human open nor a human click on record (a
    click proves the message was read even when images were blocked; a machine-only open,
    e.g. a privacy proxy, proves nothing, so such recipients count as non-openers), and
    who did not unsubscribe, complain or bounce hard: the export feeds re-sends, and a
    one-click unsubscribe or a bounce never loads the pixel.  Needs the ``U#sent#``
    markers, i.e. ``BatchSent.sent_emails``."""
    if which not in EXPORTS:
        raise ValueError(f"unknown export {which!r}: one of {', '.join(EXPORTS)}")
    pk = report_pk(account, campaign)

    def stream(kind: str) -> Iterator[tuple[str, Item]]:
        return _emails(deps, pk, kind, page_size)

    if which == "non-openers":
        excluded = _union(stream(k.OPEN), stream(k.CLICK), stream(k.UNSUB),
                          stream(k.COMPLAINT), stream(k.BOUNCE_HARD))
        for email, _item in _minus(stream(k.SENT), excluded):
            yield {"email": email}
    elif which == "bounced":
        for email, item in _union(stream(k.BOUNCE_HARD), stream(k.BOUNCE_SOFT)):
            yield {"email": email, "type": item.get("type", ""), "status": item.get("status", "")}
    else:
        kind = {"opened": k.OPEN, "clicked": k.CLICK, "unsubscribed": k.UNSUB}[which]
        for email, item in stream(kind):
            yield {"email": email, "at": item.get("at")}
