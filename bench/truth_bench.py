"""The report is complete the moment it says ``sent``, at full size: 20 sends of 20,000.

    python bench/truth_bench.py [--runs 20] [--size 20000] [--quick] [--no-docs]

Runs ``tests/e2e/test_report_truth.py::test_the_report_is_complete_the_moment_it_says_sent``
(real SMTP on 127.0.0.1, real SQLite) with ``LUNAMAIL_TRUTH_RUNS`` / ``LUNAMAIL_TRUTH_SIZE``
set: every send is checked at the first moment its report says ``sent`` (the counters
against the per-recipient records), the first one through ``campaigns send --wait``.
CI runs the same test at 4 x 2,000; ``--quick`` does that here.  Rewrites its section of
docs/benchmarks.md with the outcome, what each run saw and the wall time.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from import_bench import replace_section  # noqa: E402

START, END = "<!-- truth-bench:start -->", "<!-- truth-bench:end -->"
TEST = "tests/e2e/test_report_truth.py::test_the_report_is_complete_the_moment_it_says_sent"
_SEEN = re.compile(r"(\d+) sends of (\d+): report sent / ledger sent at the first 'sent': \[(.*)\]")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--size", type=int, default=20_000)
    p.add_argument("--quick", action="store_true", help="4 x 2,000, as CI runs it")
    p.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args()
    runs, size = (4, 2_000) if args.quick else (args.runs, args.size)
    env = {**os.environ, "LUNAMAIL_TRUTH_RUNS": str(runs), "LUNAMAIL_TRUTH_SIZE": str(size)}
    load = os.getloadavg()[0]
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", TEST],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    print(out.stdout[-4000:], out.stderr[-2000:], sep="\n")
    seen = _SEEN.search(out.stdout)
    passed = out.returncode == 0 and seen is not None
    pairs = [x.strip().strip("'") for x in seen.group(3).split(",")] if seen else []
    equal = sum(1 for x in pairs if x.split("/")[0] == x.split("/")[-1])
    expected = int(seen.group(2)) if seen else 0
    verdict = "held every time" if passed else f"FAILED (exit {out.returncode})"
    section = f"""## Report complete at `sent` (`bench/truth_bench.py`)

{datetime.now(UTC).date().isoformat()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, load average \
{load:.2f} at the start (other work shared the machine). {runs} sends of a {size:,}-member list \
({expected:,} recipients after the unsubscribed and suppressed), aiosmtpd sink on loopback, \
batch_size=100, page_size=500, smtp_connections=4, one process; the first send through \
`campaigns send --wait --json`. At the first moment each report said `sent`, its counters were compared \
with the per-recipient records.

| sends | recipients each | report = ledger at the first `sent` | result | wall time |
|---:|---:|---:|---|---:|
| {runs} | {expected:,} | {equal} of {len(pairs)} | {verdict} | {wall:.0f} s |

Report sent / ledger sent per send: {", ".join(pairs) or "-"}.
"""
    if not args.no_docs:
        replace_section(START, END, section)
    print(section)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
