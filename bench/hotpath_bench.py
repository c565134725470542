"""Send hot path benchmark: MIME, DKIM, the SMTP client, and end to end, against the
reference stack (EmailMessage + dkimpy + aiosmtplib) in the same run.

    python bench/hotpath_bench.py [--quick]

Prints a table and rewrites its section of docs/benchmarks.md (between the
``hotpath-bench`` markers), leaving other sections alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import dkim

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lunamail.adapters.mailer.smtp import SmtpMailer
from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.lib.dkim import DkimSigner, generate_keys
from lunamail.lib.mime import CampaignMime, make_message_id
from lunamail.ports.mailer import OutgoingMail, SendResult
from sinks import SmtpSink

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- hotpath-bench:start -->", "<!-- hotpath-bench:end -->"

HTML = (
    "<html><body><h1>Spring news for {name}</h1>\n"
    + "".join(
        f'<p>Paragraph {i}: Grüße — our latest offers, <a href="https://example.com/c/{{token}}/{i}">'
        f"read more</a> about item {i}.</p>\n"
        for i in range(30)
    )
    + '<p><a href="{unsub}">Unsubscribe</a></p></body></html>\n'
)
TEXT = "Spring news for {name}\n\n" + "".join(
    f"Paragraph {i}: Grüße — our latest offers: https://example.com/c/{{token}}/{i}\n" for i in range(20)
) + "\nUnsubscribe: {unsub}\n"


def rate(fn: Callable[[int], object], n: int) -> float:
    """Calls per CPU second (process time: only this process, one core's worth of work)."""
    fn(max(1, n // 20))  # warm-up
    t = time.process_time()
    fn(n)
    return n / (time.process_time() - t)


def content(i: int) -> dict[str, Any]:
    unsub = f"https://example.com/u/tok{i:08d}"
    name = f"Jörg {i}"
    return {
        "to_email": f"user{i}@example.org",
        "to_name": name,
        "subject": f"Spring news for {name} ✓",
        "html": HTML.format(name=name, token=f"t{i}", unsub=unsub),
        "text": TEXT.format(name=name, token=f"t{i}", unsub=unsub),
        "unsubscribe_url": unsub,
    }


MIME = CampaignMime(
    from_email="news@example.com", from_name="Example News", list_id="news.example.com",
    extra_headers={"X-Lunamail-Campaign": "bench"},
)


def hand_mime(i: int) -> bytes:
    return MIME.build(**content(i), message_id=make_message_id("example.com"), date=time.time(),
                      return_path_token=f"bench.{i}")


def stdlib_mime(i: int) -> bytes:
    c = content(i)
    m = EmailMessage()
    m["From"] = "Example News <news@example.com>"
    m["To"] = f"{c['to_name']} <{c['to_email']}>"
    m["Subject"] = c["subject"]
    m["Date"] = formatdate()
    m["Message-ID"] = make_msgid(domain="example.com")
    m["List-Id"] = "<news.example.com>"
    m["List-Unsubscribe"] = f"<{c['unsubscribe_url']}>"
    m["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    m.set_content(c["text"], cte="quoted-printable")
    m.add_alternative(c["html"], subtype="html", cte="quoted-printable")
    return m.as_bytes(policy=m.policy.clone(linesep="\r\n"))


def measure_mailer(url: str, mails: list[OutgoingMail], connections: int = 4) -> tuple[float, float]:
    """(messages per wall second, messages per CPU second of this process)."""
    with SmtpMailer.from_url(url, connections=connections, timeout=30) as mailer:
        mailer.send(mails[:100], lambda r: None)
        codes: list[int] = []
        t, c = time.perf_counter(), time.process_time()
        mailer.send(mails, lambda r: codes.append(r.code))
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    if set(codes) != {250}:
        raise RuntimeError(f"unexpected replies: {sorted(set(codes))}")
    return len(mails) / wall, len(mails) / cpu


def measure_aiosmtplib(port: int, mails: list[OutgoingMail], connections: int = 4) -> tuple[float, float]:
    import aiosmtplib

    async def run() -> None:
        q = list(mails)

        async def worker() -> None:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, use_tls=False)
            await client.connect()
            while q:
                m = q.pop()
                await client.sendmail(m.mail_from, [m.rcpt_to], m.data)
            await client.quit()

        await asyncio.gather(*(worker() for _ in range(connections)))

    t, c = time.perf_counter(), time.process_time()
    asyncio.run(run())
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return len(mails) / wall, len(mails) / cpu


def end_to_end(url: str, n: int, sign: Callable[[bytes], bytes] | None) -> float:
    """Build + sign + send n messages, messages per wall second (one process)."""

    def gen() -> object:
        for i in range(n):
            data = hand_mime(i)
            yield OutgoingMail(MIME.return_path(f"b.{i}"), f"user{i}@example.org", sign(data) if sign else data, i)

    with SmtpMailer.from_url(url, connections=4) as mailer:
        results: list[SendResult] = []
        t = time.perf_counter()
        mailer.send(gen(), results.append)  # type: ignore[arg-type]
        wall = time.perf_counter() - t
    assert len(results) == n
    return n / wall


def naive_end_to_end(port: int, n: int, rsa_pem: bytes) -> float:
    import aiosmtplib

    async def run() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, use_tls=False)
        await client.connect()
        for i in range(n):
            data = stdlib_mime(i)
            sig = dkim.sign(data, b"r", b"example.com", rsa_pem, include_headers=[b"from", b"to", b"subject",
                            b"date", b"message-id", b"list-unsubscribe", b"list-unsubscribe-post"],
                            canonicalize=(b"relaxed", b"relaxed"))
            await client.sendmail("b@example.com", [f"user{i}@example.org"], sig + data)
        await client.quit()

    t = time.perf_counter()
    asyncio.run(run())
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    args = ap.parse_args()
    k = 4 if args.quick else 1
    rows: list[tuple[str, str, str]] = []

    def row(step: str, value: float, note: str = "") -> None:
        rows.append((step, f"{value:,.0f} /s", note))
        print(f"{step:<62} {value:>10,.0f} /s  {note}")

    sample = hand_mime(0)
    row("MIME assembled as bytes (CampaignMime.build)", rate(lambda n: [hand_mime(i) for i in range(n)], 20000 // k),
        f"{len(sample):,} B message")
    row("reference: EmailMessage build + as_bytes", rate(lambda n: [stdlib_mime(i) for i in range(n)], 600 // k))

    rsa_pem, _ = generate_keys("rsa-sha256")
    ed_pem, _ = generate_keys("ed25519-sha256")
    rsa = DkimSigner("example.com", "r", rsa_pem)
    ed = DkimSigner("example.com", "e", ed_pem, "ed25519-sha256")
    row("DKIM RSA-2048 sign (cryptography)", rate(lambda n: [rsa.sign(sample) for _ in range(n)], 2000 // k))
    row("DKIM ed25519 sign (cryptography)", rate(lambda n: [ed.sign(sample) for _ in range(n)], 10000 // k))
    row("reference: DKIM RSA-2048 sign (dkimpy)", rate(
        lambda n: [dkim.sign(sample, b"r", b"example.com", rsa_pem, canonicalize=(b"relaxed", b"relaxed"))
                   for _ in range(n)], 200 // k))

    mails = [OutgoingMail("bounce@example.com", f"user{i}@example.org", sample, i) for i in range(20000 // k)]
    with SmtpSink() as sink:
        url = f"smtp://127.0.0.1:{sink.port}"
        wall, cpu = measure_mailer(url, mails)
        row("SmtpMailer -> smtp-sink, 4 connections (wall)", wall, f"client CPU {1e6 / cpu:.0f} µs/message")
        wall, cpu = measure_aiosmtplib(sink.port, mails[: 4000 // k])
        row("reference: aiosmtplib -> smtp-sink, 4 connections (wall)", wall, f"client CPU {1e6 / cpu:.0f} µs/message")
        row("end to end: hand MIME + pipelined client, no DKIM", end_to_end(url, 10000 // k, None))
        row("end to end: hand MIME + ed25519 + pipelined client", end_to_end(url, 6000 // k, ed.sign))
        row("end to end: hand MIME + RSA-2048 + pipelined client", end_to_end(url, 2000 // k, rsa.sign))
        row("end to end: naive (EmailMessage + dkimpy + aiosmtplib)", naive_end_to_end(sink.port, 200 // k, rsa_pem))
    with CaptureServer() as cap:
        wall, _ = measure_mailer(f"smtp://127.0.0.1:{cap.port}", mails[: 3000 // k])
        row("SmtpMailer -> aiosmtpd capture server (wall)", wall, "capped by aiosmtpd, same process")

    write_doc(rows)


def write_doc(rows: list[tuple[str, str, str]]) -> None:
    lines = [
        START,
        "## Send hot path (`bench/hotpath_bench.py`)",
        "",
        f"Python {platform.python_version()}, {platform.machine()}; rates are per CPU second of the "
        "benchmark process (one core's worth) unless marked wall. The sink is Postfix `smtp-sink`. "
        f"Load average when written: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
        "(a busy machine lowers every row alike).",
        "",
        "| step | rate | note |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        END,
    ]
    section = "\n".join(lines)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    old = DOC.read_text("utf-8") if DOC.exists() else "# Benchmarks\n"
    if START in old and END in old:
        new = old[: old.index(START)] + section + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(new, "utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
