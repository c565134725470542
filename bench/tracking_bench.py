"""Tracking → reports benchmark: how fast opens and clicks become report counters.

Builds a system in a temp folder (SQLite store, SQLite queue, the local runtime with
only the reports handlers routed), feeds the reports the events a real send of
N recipients produces (RecipientsPlanned, BatchSent with the sent addresses), then
fires open and click events (20% machine) while the runtime runs in a thread:

* ``bus``: events published straight to the bus in chunks;
* ``http``: the same traffic as real requests to the public tracking routes (signed
  pixel and click tokens, human and machine user agents) over httpx's ASGI transport,
  each request publishing its event as the served app does.

A sampler reads ``campaign_report()`` every ~20 ms.  Ingest rate = events / (last
counted - first published).  Delay of the i-th event = the first sample that shows
at least i+1 events counted minus the time event i was published (counters are
monotone, so this is the delay of the i-th *count*; handlers finish out of order).
Writes its section of docs/benchmarks.md.

    python bench/tracking_bench.py [--recipients 5000] [--events 20000] [--workers 8] [--no-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from lunamail.domain.delivery import BatchSent, RecipientsPlanned
from lunamail.domain.messages import Message, message
from lunamail.domain.tracking import Clicked, Opened
from lunamail.lib import tokens
from lunamail.lib.tracklinks import TrackingLinks
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.runtime.routing import Handler, Router
from lunamail.services.reports import api as reports
from lunamail.services.reports import handlers as rh

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- tracking-bench:start -->", "<!-- tracking-bench:end -->"
ACCOUNT, CAMPAIGN = "bench", "camp-bench"
HUMAN_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
MACHINE_UA = "Mozilla/5.0"  # a bare UA from Apple's range: the Mail Privacy Protection proxy
MACHINE_IP = "17.58.0.1"
LINKS = ("https://example.com/a", "https://example.com/b", "https://example.com/c")

if "sent_emails" in {f.name for f in dataclasses.fields(BatchSent)}:
    BatchSentE: type[BatchSent] = BatchSent
else:  # until delivery's BatchSent carries the sent addresses

    @message("bench.BatchSent")
    class _BatchSentE(BatchSent):
        sent_emails: tuple[str, ...] = ()

    BatchSentE = _BatchSentE

ROUTES: dict[type[Message], tuple[Handler, ...]] = {
    RecipientsPlanned: (rh.on_recipients_planned,),
    BatchSentE: (rh.on_batch_sent,),
    Opened: (rh.on_opened,),
    Clicked: (rh.on_clicked,),
}


def counted(system: System) -> int:
    r = reports.campaign_report(system.deps, ACCOUNT, CAMPAIGN)
    o, c = r["opened"], r["clicked"]
    return int(o["total"] + o["machine"] + c["total"] + c["machine"])


def send_phase(system: System, emails: Sequence[str], batch: int = 500) -> float:
    """What a real send would tell the reports; returns seconds to project it."""
    t0 = time.perf_counter()
    msgs: list[Message] = []
    now = system.clock.now()
    for seq, n in enumerate(range(0, len(emails), batch)):
        part = tuple(emails[n:n + batch])
        msgs.append(RecipientsPlanned(account=ACCOUNT, campaign=CAMPAIGN, seq=seq, count=len(part)))
        msgs.append(BatchSentE(account=ACCOUNT, campaign=CAMPAIGN, batch=f"{seq}-0", attempt=0,  # type: ignore[call-arg]
                               sent=len(part), deferred=0, failed=0, at=now, sent_emails=part))
    system.bus.publish(msgs)
    system.runtime().run_until_idle(timeout=300)
    return time.perf_counter() - t0


def plan_events(emails: Sequence[str], n: int, seed: int = 1) -> list[tuple[str, str, bool, int]]:
    """(kind, email, machine, link): 70% opens, 30% clicks, 20% machine, skewed to a few readers."""
    rng = random.Random(seed)
    readers = list(emails[: max(1, len(emails) * 2 // 5)])
    out = []
    for _ in range(n):
        email = rng.choice(readers)
        kind = "open" if rng.random() < 0.7 else "click"
        out.append((kind, email, rng.random() < 0.2, rng.randrange(len(LINKS))))
    return out


class Sampler:
    """Polls the report; records (time, events counted)."""

    def __init__(self, system: System, total: int, base: int) -> None:
        self.system, self.total, self.base = system, total, base
        self.samples: list[tuple[float, int]] = []

    def __call__(self) -> bool:
        n = counted(self.system) - self.base
        self.samples.append((time.perf_counter(), n))
        return n >= self.total


def run_with_runtime(system: System, total: int, publish: Callable[[list[float]], None],
                     workers: int) -> dict[str, Any]:
    """Run the runtime in a thread while ``publish`` fires ``total`` events (appending
    each event's publish time); measure ingest rate and delays."""
    sampler = Sampler(system, total, counted(system))
    runtime = system.runtime(concurrency=workers)
    done: dict[str, bool] = {}
    thread = threading.Thread(
        target=lambda: done.setdefault("met", runtime.run_until(sampler, timeout=600, interval=0.02)))
    published: list[float] = []
    thread.start()
    t_pub0 = time.perf_counter()
    publish(published)
    t_pub1 = time.perf_counter()
    thread.join()
    if not done.get("met"):
        raise SystemExit("events were not all counted within 600 s")
    t_last = next(t for t, n in sampler.samples if n >= total)
    delays: list[float] = []
    k = 0
    for i, t_published in enumerate(published):
        while sampler.samples[k][1] < i + 1:
            k += 1
        delays.append(max(0.0, sampler.samples[k][0] - t_published))
    delays.sort()
    return {
        "events": total,
        "publish_rate": total / max(1e-9, t_pub1 - t_pub0),
        "ingest_rate": total / max(1e-9, t_last - t_pub0),
        "p50_ms": delays[len(delays) // 2] * 1000,
        "p95_ms": delays[int(len(delays) * 0.95)] * 1000,
        "max_ms": delays[-1] * 1000,
    }


def bus_publisher(system: System, plan: Sequence[tuple[str, str, bool, int]], chunk: int = 200,
                  rate: float | None = None, run: str = "b") -> Callable[[list[float]], None]:
    """Publish in chunks, as fast as possible or paced at ``rate`` events/s.  Event ids are
    unique per ``run`` (the reports would rightly count a reused id once)."""
    def publish(published: list[float]) -> None:
        t0 = time.perf_counter()
        for n in range(0, len(plan), chunk):
            if rate:
                wait = t0 + n / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            msgs: list[Message] = []
            now = time.time()
            for i, (kind, email, machine, link) in enumerate(plan[n:n + chunk], start=n):
                if kind == "open":
                    msgs.append(Opened(account=ACCOUNT, campaign=CAMPAIGN, email=email, machine=machine,
                                       reason="bench" if machine else "", at=now, id=f"{run}{i}"))
                else:
                    msgs.append(Clicked(account=ACCOUNT, campaign=CAMPAIGN, email=email, link=link,
                                        url=LINKS[link], machine=machine, reason="bench" if machine else "",
                                        at=now, id=f"{run}{i}"))
            system.bus.publish(msgs)
            t = time.perf_counter()
            published.extend([t] * len(msgs))
    return publish


def http_publisher(system: System, plan: Sequence[tuple[str, str, bool, int]], concurrency: int = 32
                   ) -> Callable[[list[float]], None]:
    """Requests against the tracking routes, as a mail client (or a proxy) would send them."""
    from lunamail.entrypoints.http.routes_tracking import create_tracking_app

    app = create_tracking_app(system.deps, system.bus.publish)
    links = TrackingLinks(system.settings.base_url, system.secrets.key(ACCOUNT, tokens.TRACK),
                          ACCOUNT, CAMPAIGN)
    sent_at = time.time() - 3600  # an hour ago: human clicks are not "too soon"
    urls = []
    for kind, email, machine, link in plan:
        if kind == "open":
            url = links.pixel_url(email, sent_at)
        else:
            url = links.rewriter(email, sent_at)(LINKS[link], link)
        urls.append((url.split("/", 3)[3], machine))

    async def fire(published: list[float]) -> None:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            sem = asyncio.Semaphore(concurrency)
            stamps: list[float] = [0.0] * len(urls)

            async def one(i: int, path: str, machine: bool) -> None:
                headers = {"user-agent": MACHINE_UA if machine else HUMAN_UA}
                if machine:
                    headers["x-forwarded-for"] = MACHINE_IP
                async with sem:
                    r = await client.get("/" + path, headers=headers)
                    stamps[i] = time.perf_counter()
                    if r.status_code not in (200, 302):
                        raise SystemExit(f"tracking route answered {r.status_code}: {r.text[:200]}")

            await asyncio.gather(*(one(i, p, m) for i, (p, m) in enumerate(urls)))
            published.extend(sorted(stamps))

    return lambda published: asyncio.run(fire(published))


def noop(msg: Message, deps: Any) -> list[Message]:
    """A handler that does nothing: the runtime's own per-message ceiling."""
    return []


def runtime_ceiling(events: int, workers: int) -> float:
    """Messages/s of the same runtime and queue with a no-op consumer."""
    with tempfile.TemporaryDirectory() as tmp, \
            bootstrap_in(Path(tmp) / "data", router=Router({Opened: (noop,)})) as system:
        now = time.time()
        system.bus.publish([Opened(account=ACCOUNT, campaign=CAMPAIGN, email=f"x{i}@example.org",
                                   machine=False, at=now, id=str(i)) for i in range(events)])
        t0 = time.perf_counter()
        system.runtime(concurrency=workers).run_until_idle(timeout=600)
        return events / (time.perf_counter() - t0)


def handler_direct(events: int) -> float:
    """Events/s of the reports handlers called in a loop (no queue) on a SQLite store."""
    with tempfile.TemporaryDirectory() as tmp, bootstrap_in(Path(tmp) / "data") as system:
        plan = plan_events([f"reader{i:05d}@example.org" for i in range(5000)], events, seed=3)
        now = time.time()
        msgs: list[Opened | Clicked] = [
            Opened(account=ACCOUNT, campaign=CAMPAIGN, email=e, machine=m, at=now, id=str(i))
            if kind == "open" else
            Clicked(account=ACCOUNT, campaign=CAMPAIGN, email=e, link=n, url=LINKS[n], machine=m,
                    at=now, id=str(i))
            for i, (kind, e, m, n) in enumerate(plan)]
        t0 = time.perf_counter()
        for msg in msgs:
            if isinstance(msg, Opened):
                rh.on_opened(msg, system.deps)
            else:
                rh.on_clicked(msg, system.deps)
        return events / (time.perf_counter() - t0)


def write_docs(text: str) -> None:
    body = DOCS.read_text("utf-8") if DOCS.exists() else "# Benchmarks\n"
    section = f"{START}\n{text.rstrip()}\n{END}"
    if START in body and END in body:
        body = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: section, body, flags=re.S)
    else:
        body = body.rstrip() + "\n\n" + section + "\n"
    DOCS.write_text(body, "utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipients", type=int, default=5000)
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--http-events", type=int, default=5000)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--paced-rate", type=float, default=500.0, help="events/s of the paced run")
    p.add_argument("--no-docs", action="store_true")
    args = p.parse_args()
    emails = [f"reader{i:05d}@example.org" for i in range(args.recipients)]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, \
            bootstrap_in(Path(tmp) / "data", router=Router(ROUTES)) as system:
        send_s = send_phase(system, emails)
        results["bus"] = run_with_runtime(system, args.events,
                                          bus_publisher(system, plan_events(emails, args.events)),
                                          args.workers)
        paced = min(args.events, 3000)
        results["paced"] = run_with_runtime(
            system, paced, bus_publisher(system, plan_events(emails, paced, seed=4), chunk=10,
                                         rate=args.paced_rate, run="p"), args.workers)
        routes = ROOT / "src" / "lunamail" / "entrypoints" / "http" / "routes_tracking.py"
        if routes.exists() and args.http_events:
            plan = plan_events(emails, args.http_events, seed=2)
            results["http"] = run_with_runtime(system, args.http_events, http_publisher(system, plan),
                                               args.workers)
        report = reports.campaign_report(system.deps, ACCOUNT, CAMPAIGN)
        t0 = time.perf_counter()
        reads = 200
        for _ in range(reads):
            reports.campaign_report(system.deps, ACCOUNT, CAMPAIGN)
        read_ms = (time.perf_counter() - t0) / reads * 1000
        t0 = time.perf_counter()
        non_openers = sum(1 for _ in reports.export_recipients(system.deps, ACCOUNT, CAMPAIGN, "non-openers"))
        export_s = time.perf_counter() - t0

    ceiling = runtime_ceiling(min(args.events, 10000), args.workers)
    direct = handler_direct(min(args.events, 10000))
    lines = [
        "## Tracking events into reports",
        "",
        f"`python bench/tracking_bench.py` — {args.recipients:,} recipients, SQLite store and queue in "
        f"a temp folder, local runtime with {args.workers} handler threads, one process; "
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs "
        f"({platform.machine()}).  70% opens / 30% clicks over 3 links, 20% machine.",
        "",
        "| path | events | published/s | ingested into reports/s | delay p50 | p95 | max |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        label = {"bus": "bus.publish (burst) → runtime → reports",
                 "paced": f"bus.publish paced at {args.paced_rate:,.0f}/s → runtime → reports",
                 "http": "HTTP tracking routes (ASGI) → bus → runtime → reports"}[name]
        lines.append(f"| {label} | {r['events']:,} | {r['publish_rate']:,.0f} | {r['ingest_rate']:,.0f} | "
                     f"{r['p50_ms']:,.0f} ms | {r['p95_ms']:,.0f} ms | {r['max_ms']:,.0f} ms |")
    lines += [
        f"| reports handlers called in a loop (no queue, no runtime) | {min(args.events, 10000):,} | "
        f"| {direct:,.0f} | | | |",
        f"| runtime ceiling: same queue and runtime, no-op handler | {min(args.events, 10000):,} | "
        f"| {ceiling:,.0f} | | | |",
        "",
        f"Projecting the send ({args.recipients:,} `U#sent#` markers + batch counters): {send_s:.2f} s.  "
        f"`campaign_report()` read: {read_ms:.2f} ms (STATS + {16} shards + links).  "
        f"Non-opener export of {non_openers:,} addresses (merge of sorted marker streams): "
        f"{export_s * 1000:.0f} ms.  Final report: {report['opened']['unique']:,} unique / "
        f"{report['opened']['total']:,} human opens, {report['clicked']['unique']:,} unique clickers.",
        "",
        "The delay is from publish to the first ~20 ms report poll that shows the count.  In the "
        "burst runs it is queueing time (events wait behind the backlog); the paced run shows the "
        "delay below saturation.  The runtime's own ceiling (no-op handler) caps what one process "
        "ingests with one event per message: reaching 5,000 events/s needs handlers that take a "
        "batch of messages per call (what SQS event source mappings deliver anyway), so one "
        "transaction counts many events.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
