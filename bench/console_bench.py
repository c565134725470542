"""Console benchmark: server time of the main pages with 100,000 subscribers and 100
campaigns in the account, and the store reads each page makes (N+1 shows up as reads
that grow with the rows shown).

Builds a data folder (SQLite), imports the subscribers through the application layer,
creates the campaigns (one of them sent to a 2,000-member list so its report and the
dashboard have numbers), signs in, then times each page in process (the ASGI app
through Starlette's test client: routing, the use cases, the store, Jinja2; no socket).
The median and p95 of ``--repeat`` requests after a warm-up are kept.  Writes its
section of docs/benchmarks.md.

    python bench/console_bench.py [--subscribers 100000] [--campaigns 100] [--repeat 30] [--no-docs]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from lunamail.app import audience, campaigns, domains
from lunamail.app.base import Actor, Env
from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.entrypoints.http.app import create_app
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts
from lunamail.services.accounts import users

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- console-bench:start -->", "<!-- console-bench:end -->"
BAR_MS = 200.0
HTML = '<p>Hello {{ subscriber.name }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'


class CountingStore:
    """The store with a count of the reads made through it (the N+1 check)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in ("get", "get_many", "query"):
            def counted(*a: Any, **kw: Any) -> Any:
                self.reads += 1
                return attr(*a, **kw)
            return counted
        return attr


def _csv(rows: int) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["email", "name", "city"])
    for i in range(rows):
        w.writerow([f"reader{i:06d}@example.com", f"Reader {i}", ("Oslo", "Lima", "Pune")[i % 3]])
    return out.getvalue().encode()


def build(folder: Path, subscribers: int, n_campaigns: int, smtp_port: int) -> tuple[Any, Any, dict[str, str]]:
    system = bootstrap_in(folder, settings_overrides={"smtp_url": f"smtp://127.0.0.1:{smtp_port}"})
    env = Env(system.deps, system.bus.publish)
    accounts.create_account(system.deps, "Bench", account_id="bench")
    users.add_user(system.deps, "bench", "owner@example.com", "owner")
    users.set_password(system.deps, "bench", "owner@example.com", "bench password 1")
    actor = Actor("bench", "owner")
    domains.add(env, actor, "bench.example.org")  # the campaigns' From
    big = audience.create_list(env, actor, audience.NewList("Everyone", fields=[{"name": "city", "type": "text"}]))
    small = audience.create_list(env, actor, audience.NewList("Small"))
    for lst, rows in ((big, subscribers), (small, 2000)):
        job = audience.import_file(env, actor, str(lst["id"]), io.BytesIO(_csv(rows)))
        system.run_until(lambda j=job: audience.get_import(env, actor, str(j["id"]))["status"] == "completed",
                         timeout=1800)
    ids: list[str] = []
    for n in range(n_campaigns):
        c = campaigns.create(env, actor, campaigns.NewCampaign(
            name=f"Campaign {n}", subject="Hi {{ subscriber.name }}", from_name="Bench",
            from_email="news@bench.example.org", html=HTML, lists=[str(big["id"])]))
        ids.append(c.id)
    # one campaign really sent (to the SMTP capture server), so a report and the dashboard
    # have counters
    sent = campaigns.create(env, actor, campaigns.NewCampaign(
        name="Sent one", subject="Hi", from_name="Bench", from_email="news@bench.example.org",
        html=HTML, lists=[str(small["id"])]))
    campaigns.send(env, actor, sent.id)
    system.run_until(lambda: str(campaigns.get(env, actor, sent.id).status) == "sent", timeout=600)
    return system, env, {"list": str(big["id"]), "campaign": ids[-1], "sent": sent.id,
                         "email": f"reader{subscribers // 2:06d}@example.com"}


def measure(system: Any, ids: dict[str, str], repeat: int) -> list[dict[str, Any]]:
    counting = CountingStore(system.deps.store)
    system.deps.store = counting
    app = create_app(system)
    client = TestClient(app, follow_redirects=False)
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    client.post("/login", data={"email": "owner@example.com", "password": "bench password 1", "csrf": token})
    pages = [
        ("dashboard", "/"), ("lists", "/lists"), ("list (first 50 subscribers)", f"/lists/{ids['list']}"),
        ("subscriber search by prefix", f"/lists/{ids['list']}?q=reader0500"),
        ("subscriber", f"/lists/{ids['list']}/subscribers/{ids['email']}"),
        ("campaigns (50 newest)", "/campaigns"), ("campaign editor + preview", f"/campaigns/{ids['campaign']}"),
        ("report", f"/campaigns/{ids['sent']}/report"),
        ("recipients ledger", f"/campaigns/{ids['sent']}/recipients"), ("suppression", "/suppression"),
        ("users", "/users"), ("settings", "/settings"), ("dead letters", "/dead-letters"),
    ]
    out = []
    for name, path in pages:
        for _ in range(3):
            assert client.get(path).status_code == 200, path
        times, reads = [], []
        for _ in range(repeat):
            before = counting.reads
            t0 = time.perf_counter()
            resp = client.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            reads.append(counting.reads - before)
            assert resp.status_code == 200, path
        times.sort()
        out.append({"page": name, "median": statistics.median(times),
                    "p95": times[min(len(times) - 1, int(len(times) * 0.95))], "reads": max(reads)})
    system.deps.store = counting._inner
    return out


def write_docs(section: str) -> None:
    text = DOCS.read_text("utf-8") if DOCS.exists() else "# Benchmarks\n"
    block = f"{START}\n{section.rstrip()}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text, "utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--campaigns", type=int, default=100)
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--quick", action="store_true", help="10,000 subscribers, 20 campaigns, 10 requests")
    p.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args()
    if args.quick:
        args.subscribers, args.campaigns, args.repeat = 10_000, 20, 10
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp, CaptureServer("127.0.0.1", 0) as sink:
        t0 = time.perf_counter()
        system, _, ids = build(Path(tmp) / "data", args.subscribers, args.campaigns, sink.port)
        setup_s = time.perf_counter() - t0
        try:
            rows = measure(system, ids, args.repeat)
        finally:
            system.close()
    worst = max(r["p95"] for r in rows)
    lines = [
        "## Console pages (`bench/console_bench.py`)",
        "",
        f"{args.subscribers:,} subscribers in one list (+ a 2,000-member list), {args.campaigns} draft campaigns and "
        f"one sent campaign; SQLite; the ASGI app in process (no socket); {args.repeat} requests per page after "
        f"3 warm-ups; load average {os.getloadavg()[0]:.1f} at the end; Python {platform.python_version()}. "
        f"Set-up (import + campaigns) took {setup_s:.0f} s. \"reads\" counts store calls (get, get_many, query) "
        "per request. Subscriber pages read one page of 50 in one query, whatever the list's size. The "
        "dashboard (10 newest campaigns) and the campaigns page (50 newest) read the counters of every shown "
        "campaign in one batched read (`reports.summaries`), so their reads do not grow with the campaigns shown.",
        "",
        "| page | median ms | p95 ms | store reads |",
        "|---|---|---|---|",
        *[f"| {r['page']} | {r['median']:.1f} | {r['p95']:.1f} | {r['reads']} |" for r in rows],
        "",
        f"Bar: every page under {BAR_MS:.0f} ms of server time: {'met' if worst < BAR_MS else 'NOT met'} "
        f"(worst p95 {worst:.1f} ms).",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_docs:
        write_docs(section)


if __name__ == "__main__":
    main()
