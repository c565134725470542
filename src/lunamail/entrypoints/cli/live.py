"""Rendering a campaign report in the terminal, once or live.

The live view polls a cheap version (see ``reports.report_version``) every interval
and re-reads the full report only when it changed, so following a campaign costs
one small query per tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

FINAL = frozenset({"sent", "cancelled", "failed"})


def _pct(value: Any) -> str:
    return f"{float(value):.1%}"


def report_table(doc: dict[str, Any]) -> Table:
    """All counters and rates of ``campaign_report()`` as one two-column table."""
    title = f"campaign {doc.get('campaign', '')} — {doc.get('status', 'unknown')}"
    if doc.get("name"):
        title += f" — {doc['name']}"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("counter", style="bold")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("planned", str(doc.get("planned", 0))),
        ("sent", str(doc.get("sent", 0))),
        ("deferred", str(doc.get("deferred", 0))),
        ("failed", str(doc.get("failed", 0))),
        ("progress", _pct(doc.get("progress", 0.0))),
        ("send rate", f"{doc.get('send_rate', 0.0)} /s"),
        ("delivered", str(doc.get("delivered", 0))),
    ]
    bounced, opened, clicked = doc.get("bounced", {}), doc.get("opened", {}), doc.get("clicked", {})
    rows += [
        ("bounced (hard / soft)", f"{bounced.get('total', 0)} ({bounced.get('hard', 0)} / "
                                  f"{bounced.get('soft', 0)})"),
        ("rejected by the receiver (sender-side)", str(bounced.get("sender", 0))),
        ("complained", str(doc.get("complained", 0))),
        ("opened (unique / total)", f"{opened.get('unique', 0)} / {opened.get('total', 0)}"),
        ("machine opens", str(opened.get("machine", 0))),
        ("clicked (unique / total)", f"{clicked.get('unique', 0)} / {clicked.get('total', 0)}"),
        ("machine clicks", str(clicked.get("machine", 0))),
        ("unsubscribed", str(doc.get("unsubscribed", 0))),
    ]
    sources = doc.get("complaint_sources") or {}
    if sources:
        rows.append(("complaint sources", ", ".join(f"{k} {v}" for k, v in sorted(sources.items()))))
    for reason in (doc.get("failures") or {}).get("top", [])[:5]:
        rows.append((f"failed: {reason['reason']}", str(reason["count"])))
    for name, value in rows:
        table.add_row(name, value)
    rejected = doc.get("rejected") or []
    if rejected:
        table.add_section()
        for r in rejected:
            why = " ".join(x for x in (r.get("status", ""), r.get("reason", "")) if x)
            table.add_row(f"{r['domain']} rejected", f"{int(r['count']):,}" + (f": {why}" if why else ""))
    table.add_section()
    for name, value in (doc.get("rates") or {}).items():
        table.add_row(name.replace("_", " "), _pct(value))
    links = doc.get("links") or []
    if links:
        table.add_section()
        for link in links:
            url = str(link.get("url", ""))
            shown = url if len(url) <= 48 else url[:45] + "..."
            table.add_row(f"link {link['link']}: {shown}", f"{link['unique']} / {link['total']}")
    return table


def follow_report(
    fetch: Callable[[], dict[str, Any]],
    version: Callable[[], Any],
    *,
    console: Console,
    interval: float = 0.5,
    settle: float = 10.0,
    max_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Re-render the report on change until Ctrl-C, until the campaign is final and nothing
    changed for ``settle`` seconds (late opens and bounces keep coming after a send), or
    until ``max_seconds``.  Returns the last report."""
    doc = fetch()
    seen = version()
    start = changed = monotonic()
    with Live(report_table(doc), console=console, refresh_per_second=4, transient=False) as live:
        try:
            while True:
                now = monotonic()
                if max_seconds is not None and now - start >= max_seconds:
                    break
                if doc.get("status") in FINAL and now - changed >= settle:
                    break
                sleep(interval)
                current = version()
                if current != seen:
                    seen, doc, changed = current, fetch(), monotonic()
                    live.update(report_table(doc))
        except KeyboardInterrupt:
            pass
    return doc
