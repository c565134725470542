"""``lunamail demo``: the whole send path on one machine, in one command.

Starts an SMTP capture server on 127.0.0.1, imports a generated list of
synthetic subscribers (with a few bad rows and one suppressed address, to
show the error report and suppression at work), sends a personalised
campaign through the real runtime and SMTP, prints the report and says where
the captured ``.eml`` files are.
"""

from __future__ import annotations

import csv
import random
import shutil
import time
from pathlib import Path

import typer
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from lunamail.app import accounts, audience, campaigns, domains
from lunamail.app.base import Actor, Env
from lunamail.config import Settings
from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.entrypoints.cli.campaigns_cmds import follow, print_report
from lunamail.entrypoints.cli.common import console, errors, fail
from lunamail.entrypoints.cli.context import env_of
from lunamail.runtime.bootstrap import System, bootstrap

ACCOUNT = "default"
DEMO_OWNER = "owner@example.com"  # who signs in to the console after the demo
MARKER = ".lunamail-demo"
DEMO_DOMAIN = "demo.example.org"  # the demo's sending domain (its key signs every message)

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus", "Frances", "Dennis",
         "Radia", "Guido", "Sophie", "Tim", "Karen", "Niklaus", "Hedy", "Donald", "Anita", "José"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Torvalds",
        "Allen", "Ritchie", "Perlman", "van Rossum", "Wilson", "Berners-Lee", "Spärck Jones", "Wirth"]
CITIES = ["Lisbon", "Oslo", "Kyoto", "Nairobi", "Montréal", "Valparaíso", "Tallinn", "", "Dakar"]

HTML = """<!doctype html>
<html><body style="font-family: sans-serif">
<h1>Hello {{ subscriber.name or "there" }}!</h1>
<p>The autumn issue of <em>{{ campaign.name }}</em> is out. Greetings to
{{ subscriber.fields.city | default("your town", true) }}.</p>
<p><a href="https://example.com/articles/autumn">Read the articles</a> or
<a href="https://example.com/events?city={{ subscriber.fields.city | urlencode }}">see events near you</a>.</p>
<p style="font-size: small">You receive this because you subscribed to the demo list.
<a href="{{ view_in_browser_url }}">View in browser</a> ·
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>
"""


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def _write_csv(path: Path, count: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Email", "Name", "City"])
        for i in range(count):
            name = f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"
            w.writerow([f"reader{i:05d}@example.com", name, rnd.choice(CITIES)])
        # a few rows a real file would have: they land in the error report, nothing else breaks
        w.writerow(["not-an-email", "Broken Row", "Nowhere"])
        w.writerow(["reader00001@example.com", "Duplicate Row", "Oslo"])
        w.writerow(["", "No Address", ""])


def _fresh_dir(path: Path) -> None:
    if path.exists():
        if not (path / MARKER).exists():
            fail(f"{path} exists and was not made by the demo; pass --data-dir with a new folder")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by `lunamail demo`; safe to delete\n")


def _import(system: System, env: Env, actor: Actor, list_id: str, csv_path: Path) -> dict[str, object]:
    with csv_path.open("rb") as f:
        job = audience.import_file(env, actor, list_id, f)
    state: dict[str, object] = dict(job)
    with Progress(TextColumn("[bold]importing"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[rows]} rows"), console=console) as bar:
        task = bar.add_task("import", total=float(job.get("bytes_total") or 1), rows=0)

        def done() -> bool:
            state.update(audience.get_import(env, actor, str(job["id"])))
            return state.get("status") in ("completed", "failed")

        def tick() -> None:
            bar.update(task, completed=float(str(state.get("bytes_done") or 0)), rows=state.get("rows", 0))

        system.run_until(done, timeout=300, on_tick=tick)
        bar.update(task, completed=float(job.get("bytes_total") or 1), rows=state.get("rows", 0))
    return state


def demo(
    subscribers: int = typer.Option(1000, "--subscribers", min=1, max=200_000,
                                    help="How many synthetic subscribers to send to."),
    data_dir: Path = typer.Option(Path("lunamail-demo"), "--data-dir",
                                  help="A folder the demo may wipe and fill (default ./lunamail-demo)."),
) -> None:
    """Send a real, personalised campaign to a local SMTP capture server and print the report."""
    data_dir = data_dir.resolve()
    _fresh_dir(data_dir)
    outbox = data_dir / "outbox"
    with CaptureServer("127.0.0.1", 0, out_dir=outbox) as sink:
        settings = Settings.load(data_dir=data_dir, smtp_url=f"smtp://127.0.0.1:{sink.port}",
                                 workers=4, smtp_connections=4)
        console.print(Panel.fit(
            f"data folder  {data_dir}\nSMTP capture 127.0.0.1:{sink.port} → {outbox}",
            title="Lunamail demo"))
        with bootstrap(settings) as system, errors(False):
            env = env_of(system)
            owner_link = accounts.initialise(env, owner=DEMO_OWNER).owner_link
            actor = accounts.actor(env, ACCOUNT)
            lst = audience.create_list(env, actor, audience.NewList(
                "Demo readers", description="Synthetic subscribers made by the demo",
                fields=[{"name": "city", "type": "text"}]))
            csv_path = data_dir / "subscribers.csv"
            _write_csv(csv_path, subscribers)
            summary = _import(system, env, actor, str(lst["id"]), csv_path)
            report_key = summary.get("error_report")
            report_path = system.blobs.local_path(str(report_key)) if report_key else None
            console.print(
                f"imported {summary.get('imported')} subscribers, "
                f"rejected {summary.get('rejected')} rows, skipped {summary.get('skipped')} "
                f"(error report: {report_path or report_key})")
            # one reader asked never to be mailed again: the send must skip them
            audience.suppress(env, actor, "reader00003@example.com", reason="demo: complained earlier")
            # mail goes out From a sending domain of the account, DKIM-signed with its key
            sending = domains.add(env, actor, DEMO_DOMAIN)
            console.print(f"sending domain {sending.domain}: DKIM selector {sending.keys[0].selector}; "
                          f"a real domain publishes {len(sending.records)} DNS records "
                          f"(`lunamail domains show {sending.domain}`)")
            camp = campaigns.create(env, actor, campaigns.NewCampaign(
                name="Lunamail Gazette", subject="Autumn issue for {{ subscriber.name }}",
                from_name="Lunamail Demo", from_email=f"news@{DEMO_DOMAIN}",
                html=HTML, lists=[str(lst["id"])]))
            t0 = time.monotonic()
            campaigns.send(env, actor, camp.id)
            report = follow(system, actor, camp.id, timeout=600, quiet=False)
            elapsed = time.monotonic() - t0
        print_report(report)
        sink.wait_for(int(report["sent"]), timeout=10)
        files = len(list(outbox.glob("*.eml"))) if outbox.exists() else 0
    console.print(
        f"\n[bold green]{report['sent']}[/] messages sent in {elapsed:.1f} s "
        f"({report['sent'] / max(elapsed, 1e-6):.0f}/s); the capture server received {files} "
        f"(.eml files in {outbox}).\nOpen one: [bold]ls {outbox} | head[/]")
    if owner_link:
        console.print(Panel.fit(
            f"Run\n"
            f"  [bold]LUNAMAIL_DATA_DIR={data_dir} lunamail serve[/]\n"
            f"then open the console at {settings.base_url}/ with the one-time link below\n"
            f"(it signs in {DEMO_OWNER}, who sets a password):",
            title="The web console"))
        console.print(owner_link, soft_wrap=True, highlight=False, markup=False)
    if report["status"] != "sent":
        fail(f"the campaign ended as {report['status']}, not sent")
