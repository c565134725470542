"""Send benchmark: a whole campaign through one ``lunamail worker`` process to Postfix's
``smtp-sink``, against the bare hot path (render + MIME + DKIM + SMTP client, no queue,
no store) on the same box in the same run.

    python bench/send_bench.py [--quick] [--configs none rsa rsa+ed25519] [--repeat N]
                               [--set batch_size=500 --set workers=4 ...] [--no-docs]

For each configuration (no DKIM, RSA-2048, RSA-2048 + ed25519) a fresh data folder gets
an audience imported from a generated CSV (in this process), a campaign with a ~4 KB
personalised HTML template with 8 tracked links, and one worker subprocess.  This
process publishes ``CampaignSendStarted`` and waits until the report says "sent".

Measured: messages/s (wall, first to last recorded outcome), CPU seconds of the worker
process per 1,000 messages (user+sys from /proc, planning included), peak RSS of the
worker (VmHWM), and the same rates for the bare hot path.  "Platform overhead" is
``1 - platform rate / bare rate``.  Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lunamail.adapters.mailer.smtp import SmtpMailer
from lunamail.config import Settings
from lunamail.domain.audience import ImportChunk
from lunamail.lib.dkim import generate_keys
from lunamail.ports.itemstore import query_all
from lunamail.ports.mailer import OutgoingMail, SendResult
from lunamail.runtime.bootstrap import System, bootstrap
from lunamail.services.audience import api as audience
from lunamail.services.audience import handlers as audience_handlers
from lunamail.services.campaigns import api as campaigns
from lunamail.services.delivery import keys as delivery_keys
from lunamail.services.delivery.planning import load_meta
from lunamail.services.delivery.prepare import PreparedCampaign
from lunamail.services.reports import api as reports
from sinks import SmtpSink

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- send-bench:start -->", "<!-- send-bench:end -->"
ACCOUNT = "default"
FROM_DOMAIN = "news.example.com"
CONFIGS = ("none", "rsa", "rsa+ed25519")
BARE_MAX = 20_000  # the bare path's rate is steady long before this many messages

FIRST = ("Ann", "Bob", "Carla", "Dmitri", "Eve", "Fatima", "Gus", "Héloïse", "Ivan", "Jun")
CITIES = ("Paris", "Oslo", "Zürich", "Lagos", "Lima", "Pune", "Osaka", "Quito")

SUBJECT = "{{ subscriber.name | default('Friend') }}, your spring picks from {{ subscriber.fields.city }}"


def _template() -> str:
    """A realistic newsletter: ~4 KB of HTML, 8 tracked links, a few personal fields, a
    conditional block, the web-view and unsubscribe links."""
    items = []
    for i in range(6):
        items.append(
            f'<tr><td style="padding:12px 0;border-bottom:1px solid #eee">'
            f'<h3 style="margin:0 0 6px;font:600 17px Arial,sans-serif;color:#222">Pick {i + 1}: '
            f"hand-made item no. {i + 1}</h3>"
            f'<p style="margin:0;font:14px/1.5 Arial,sans-serif;color:#555">Made in small batches, '
            f"shipped from our workshop near {{{{ subscriber.fields.city }}}} in recycled packaging. "
            f"Members save 15% this week.</p>"
            f'<a href="https://shop.example.com/items/{i + 1}?utm_source=newsletter&amp;utm_medium=email'
            f'&amp;utm_campaign=spring" style="color:#0a66c2">See item {i + 1}</a></td></tr>\n'
        )
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Spring picks</title></head>"
        '<body style="margin:0;background:#f6f6f6">\n'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">\n'
        '<table role="presentation" width="600" style="background:#fff;padding:24px">\n'
        '<tr><td><p style="font:12px Arial,sans-serif;color:#999">Trouble reading? '
        '<a href="{{ view_in_browser_url }}">View it in your browser</a></p>\n'
        '<h1 style="font:700 24px Arial,sans-serif;color:#111">Hello {{ subscriber.name | default("there") }}!</h1>\n'
        '<p style="font:15px/1.6 Arial,sans-serif;color:#333">Spring is here in '
        "{{ subscriber.fields.city }}, and so are six new things from our makers. "
        "{% if subscriber.fields.plan == 'pro' %}As a Pro member you get free shipping on all of them."
        "{% else %}Upgrade to Pro for free shipping on every order.{% endif %}</p></td></tr>\n"
        + "".join(items)
        + '<tr><td style="padding:18px 0"><a href="https://shop.example.com/spring?ref={{ subscriber.fields.plan }}" '
        'style="background:#0a66c2;color:#fff;padding:10px 18px;text-decoration:none">Shop the spring edit</a>'
        ' or <a href="https://blog.example.com/spring-stories">read the makers\' stories</a>.</td></tr>\n'
        '<tr><td style="font:12px/1.5 Arial,sans-serif;color:#999;padding-top:24px">You receive this '
        "because you subscribed as {{ subscriber.email }}. Example Shop, 1 Market Street, Springfield.<br>"
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a></td></tr>\n'
        "</table></td></tr></table></body></html>\n"
    )


HTML = _template()


@dataclass
class Run:
    config: str
    size: int
    messages: int = 0
    rate: float = 0.0  # messages/s, first to last recorded outcome
    total_wall: float = 0.0  # publish -> report "sent"
    cpu_per_1k: float = 0.0
    rss_mb: float = 0.0
    bare_rate: float = 0.0
    bare_cpu_per_1k: float = 0.0
    bare_n: int = 0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def overhead(self) -> float:
        return 1.0 - self.rate / self.bare_rate if self.bare_rate else 0.0


# ---------------------------------------------------------------- /proc helpers


def proc_cpu(pid: int) -> float:
    """user+sys CPU seconds of a process (all its threads) from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------- set-up


def write_csv(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["email", "name", "city", "plan"])
        for i in range(n):
            w.writerow([f"reader{i:07d}@example.net", f"{FIRST[i % 10]} Reader{i}", CITIES[i % 8],
                        "pro" if i % 3 == 0 else "free"])


def recipients(n: int, list_id: str) -> Iterator[dict[str, Any]]:
    """The recipients exactly as the audience service hands them to delivery."""
    for i in range(n):
        yield {"email": f"reader{i:07d}@example.net", "name": f"{FIRST[i % 10]} Reader{i}",
               "fields": {"city": CITIES[i % 8], "plan": "pro" if i % 3 == 0 else "free"},
               "list": list_id}


def settings_env(data_dir: Path, sink_port: int, dkim: str, overrides: dict[str, str]) -> dict[str, str]:
    env = {
        "LUNAMAIL_DATA_DIR": str(data_dir),
        "LUNAMAIL_SMTP_URL": f"smtp://127.0.0.1:{sink_port}",
        "LUNAMAIL_BASE_URL": "https://mail.example.com",
        "LUNAMAIL_DKIM": dkim,
    }
    env.update({"LUNAMAIL_" + k.upper(): v for k, v in overrides.items()})
    return env


def make_template_folder(folder: Path, n: int, work: Path) -> tuple[str, str]:
    """A data folder with ``n`` imported subscribers and a draft campaign; returns
    (list id, campaign id).  Copied for every run, so each run starts fresh."""
    settings = Settings.load(env={"LUNAMAIL_DATA_DIR": str(folder)})
    with bootstrap(settings) as system:
        deps = system.deps
        lst = audience.create_list(deps, ACCOUNT, "Readers", fields=[
            {"name": "city", "type": "text"}, {"name": "plan", "type": "text"}])
        path = work / f"audience-{n}.csv"
        write_csv(path, n)
        with path.open("rb") as fh:
            system.blobs.put_stream("imports/bench.csv", fh)
        _job, cmd = audience.start_import(deps, ACCOUNT, str(lst["id"]), "imports/bench.csv")
        nxt: ImportChunk | None = cmd
        while nxt is not None:
            nxt = next((m for m in audience_handlers.import_chunk(nxt, deps)
                        if isinstance(m, ImportChunk)), None)
        camp = campaigns.create_draft(
            deps, ACCOUNT, name="Spring picks", subject=SUBJECT, from_name="Example Shop",
            from_email=f"hello@{FROM_DOMAIN}", html=HTML, lists=[str(lst["id"])],
        )
    return str(lst["id"]), camp.id


def dkim_spec(config: str, keydir: Path) -> str:
    if config == "none":
        return ""
    specs = [f"{FROM_DOMAIN}:r2048:{keydir / 'rsa.pem'}:rsa-sha256"]
    if config == "rsa+ed25519":
        specs.append(f"{FROM_DOMAIN}:ed:{keydir / 'ed.pem'}:ed25519-sha256")
    return ",".join(specs)


# ---------------------------------------------------------------- the runs


def clean_environ() -> dict[str, str]:
    """This process's environment without the developer's own LUNAMAIL_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LUNAMAIL_")}


def wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{log.read_text()[-3000:]}")
        if "lunamail worker:" in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise RuntimeError("worker did not become ready")


def outcome_span(system: System, campaign: str) -> tuple[int, float, float]:
    """(sent records, first and last commit time) from delivery's send records."""
    n, first, last = 0, float("inf"), 0.0
    for shard in range(delivery_keys.RECORD_SHARDS):
        pk = f"{delivery_keys.campaign_pk(ACCOUNT, campaign)}#{shard}"
        for item in query_all(system.store, pk, prefix="R#"):
            if item.get("status") == "sent":
                n += 1
                at = float(item["at"])
                first, last = min(first, at), max(last, at)
    return n, first, last


def platform_run(folder: Path, env: dict[str, str], campaign: str, size: int, timeout: float,
                 profile: Path | None = None) -> dict[str, Any]:
    settings = Settings.load(env=env)
    log = folder / "worker.log"
    with log.open("wb") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "lunamail.entrypoints.cli.main", "worker"],
                                env={**clean_environ(), **env}, stdout=logf, stderr=subprocess.STDOUT)
    try:
        wait_ready(proc, log)
        spy = None
        if profile is not None:  # sampled stacks of the worker: py-spy from PyPI
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(proc.pid), "--rate", "250",
                                    "--format", "raw", "--output", str(profile), "--nonblocking", "--gil"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        cpu0 = proc_cpu(proc.pid)
        with bootstrap(settings) as system:
            started = campaigns.send_now(system.deps, ACCOUNT, campaign, audience_size=size)
            t0 = time.perf_counter()
            system.bus.publish([started])
            deadline = t0 + timeout
            while True:
                rep = reports.campaign_report(system.deps, ACCOUNT, campaign)
                if rep["status"] == "sent":
                    break
                if proc.poll() is not None or time.perf_counter() > deadline:
                    raise RuntimeError(f"campaign did not finish: {rep}\n{log.read_text()[-3000:]}")
                time.sleep(0.25)
            total = time.perf_counter() - t0
            cpu = proc_cpu(proc.pid) - cpu0
            rss = proc_hwm_mb(proc.pid)
            n, first, last = outcome_span(system, campaign)
            if rep["sent"] != size or n != size:
                raise RuntimeError(f"expected {size} sent, report {rep['sent']}, records {n}")
            meta = load_meta(system.deps, ACCOUNT, campaign)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"n": n, "rate": n / max(last - first, 1e-9), "total": total,
            "cpu_per_1k": cpu / n * 1000, "rss_mb": rss, "meta": meta}


def bare_run(folder: Path, env: dict[str, str], campaign: str, meta: dict[str, Any], list_id: str,
             n: int) -> dict[str, float]:
    """The hot path alone in this process: PreparedCampaign.build (render, tokens,
    tracking, MIME, DKIM) handed to SmtpMailer over the same number of connections."""
    settings = Settings.load(env=env)
    with bootstrap(settings) as system:
        prepared = PreparedCampaign(system.deps, ACCOUNT, campaign, meta["content"])
        with SmtpMailer.from_url(settings.smtp_url, connections=settings.smtp_connections,
                                 timeout=settings.smtp_timeout) as mailer:
            warm = list(recipients(200, list_id))
            mailer.send((prepared.build(r) for r in warm), lambda r: None)
            codes: dict[int, int] = {}

            def on_result(r: SendResult) -> None:
                codes[r.code] = codes.get(r.code, 0) + 1

            def mails() -> Iterator[OutgoingMail]:
                for r in recipients(n, list_id):
                    yield prepared.build(r)

            t, c = time.perf_counter(), time.process_time()
            mailer.send(mails(), on_result)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
    if codes != {250: n}:
        raise RuntimeError(f"bare run: unexpected replies {codes}")
    return {"rate": n / wall, "cpu_per_1k": cpu / n * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10,000 recipients instead of 100,000")
    ap.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    ap.add_argument("--sizes", nargs="+", type=int, help="audience sizes (default: 100000 10000 or --quick 10000)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration; the best is reported")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a worker setting (LUNAMAIL_NAME), e.g. --set workers=2 --set batch_size=250")
    ap.add_argument("--no-bare", action="store_true", help="skip the bare hot path")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--profile", type=Path, metavar="FILE",
                    help="record the worker with py-spy (collapsed stacks) into FILE")
    args = ap.parse_args()
    overrides = dict(s.split("=", 1) for s in args.set)
    sizes = args.sizes or ([10_000] if args.quick else [100_000, 10_000])

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="send-bench-") as tmp:
        work = Path(tmp)
        keydir = work / "keys"
        keydir.mkdir()
        (keydir / "rsa.pem").write_bytes(generate_keys("rsa-sha256")[0])
        (keydir / "ed.pem").write_bytes(generate_keys("ed25519-sha256")[0])
        with SmtpSink() as sink:
            for size in sizes:
                template = work / f"template-{size}"
                t = time.perf_counter()
                list_id, campaign = make_template_folder(template, size, work)
                print(f"{size:,} recipients imported and campaign drafted in {time.perf_counter() - t:.1f}s",
                      flush=True)
                # The 10k run next to a 100k one is there for memory; DKIM variants at the largest size.
                configs = args.configs if size == max(sizes) else ["none"]
                for config in configs:
                    best: Run | None = None
                    for rep in range(args.repeat):
                        folder = work / f"run-{size}-{config}-{rep}"
                        shutil.copytree(template, folder)
                        env = settings_env(folder, sink.port, dkim_spec(config, keydir), overrides)
                        load = os.getloadavg()
                        p = platform_run(folder, env, campaign, size, args.timeout, args.profile)
                        run = Run(config, size, p["n"], p["rate"], p["total"], p["cpu_per_1k"], p["rss_mb"],
                                  load=load, extra=overrides)
                        if not args.no_bare:
                            run.bare_n = min(size, BARE_MAX)
                            b = bare_run(folder, env, campaign, p["meta"], list_id, run.bare_n)
                            run.bare_rate, run.bare_cpu_per_1k = b["rate"], b["cpu_per_1k"]
                        shutil.rmtree(folder, ignore_errors=True)
                        print(
                            f"{config:<12} {size:>7,}: platform {run.rate:7,.0f} msg/s "
                            f"({run.cpu_per_1k:.2f} CPU s/1k, RSS {run.rss_mb:.0f} MB, "
                            f"{run.total_wall:.1f}s publish->sent) | bare {run.bare_rate:7,.0f} msg/s "
                            f"({run.bare_cpu_per_1k:.2f} CPU s/1k) | overhead {run.overhead:.0%} "
                            f"| load {load[0]:.2f}",
                            flush=True,
                        )
                        if best is None or run.rate > best.rate:
                            best = run
                    assert best is not None
                    runs.append(best)
                shutil.rmtree(template, ignore_errors=True)
    if not args.no_docs:
        write_docs(runs, args.repeat, overrides)


CONFIG_NAMES = {"none": "no DKIM", "rsa": "RSA-2048 DKIM", "rsa+ed25519": "RSA-2048 + ed25519 DKIM"}


def write_docs(runs: list[Run], repeat: int, overrides: dict[str, str]) -> None:
    settings = Settings()
    effective = {"workers": settings.workers, "batch_size": settings.batch_size,
                 "page_size": settings.page_size, "smtp_connections": settings.smtp_connections}
    effective.update(overrides)  # type: ignore[arg-type]
    shown = ", ".join(f"{k}={v}" for k, v in effective.items())
    la = runs[0].load if runs else (0.0, 0.0, 0.0)
    lines = [
        "## Campaign send (`bench/send_bench.py`)",
        "",
        f"{dt.date.today().isoformat()}, Python {platform.python_version()}, {cpu_model()}, "
        f"{os.cpu_count()} CPUs, load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} at the first run "
        "(other work shared the machine; CPU s per 1,000 messages is the steadier figure). "
        f"One `lunamail worker` process ({shown}), SQLite store and queue, to Postfix `smtp-sink` on "
        "loopback; ~4 KB personalised HTML, 8 tracked links, open pixel, text part generated from the "
        "HTML. Rate is wall time from the first to the last recorded outcome; CPU and peak RSS (VmHWM) "
        "are the worker's own, planning included. The bare hot path is the same template rendered, "
        "MIME-assembled, signed and handed to `SmtpMailer` over the same connections in one process, "
        f"no queue and no store, run right after. Best of {repeat} run(s).",
        "",
        "| configuration | recipients | platform msg/s | worker CPU s / 1k msgs | worker peak RSS "
        "| bare msg/s | bare CPU s / 1k | platform overhead | load (1 min) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {CONFIG_NAMES[r.config]} | {r.size:,} | {r.rate:,.0f} | {r.cpu_per_1k:.2f} | {r.rss_mb:.0f} MB "
            f"| {r.bare_rate:,.0f} | {r.bare_cpu_per_1k:.2f} | {r.overhead:.0%} | {r.load[0]:.2f} |"
        )
    text = DOCS.read_text("utf-8") if DOCS.exists() else "# Benchmarks\n"
    block = f"{START}\n" + "\n".join(lines) + f"\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text, "utf-8")
    print(f"wrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
