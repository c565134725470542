"""Side-by-side benchmark of this checkout against an earlier commit, in the same run.

    python bench/compare.py --base REV [--rounds 2] [--only send tracking import]
                            [--base-variant serve+asgi] [--no-docs]

A change "is not slower" only when measured against its base on the same machine in the
same minutes: on a shared 2-vCPU box the same code moves ±10-20% from one run to the next.
So the base commit is checked out in a temporary git worktree, and each round runs every
chosen benchmark once for the base and once for this checkout, alternating which goes
first (ABBA), each in its own tree (its own bench script, ``PYTHONPATH`` on its own
``src``).  Each side's runs give a median and a spread; the verdict calls a change noise
when it is smaller than the larger of the two sides' half-ranges.

Benchmarks (the figures are parsed from each script's printed summary):

* ``send``: ``send_bench.py --configs none --sizes 100000`` — msg/s, CPU s per 1,000, RSS;
* ``tracking``: ``tracking_bench.py --only http --repeat 3`` — events/s of each HTTP run;
  ``--base-variant`` picks the base's variant when its default differs (a commit from
  before the hand-written tracking protocol was retired: ``serve+asgi``);
* ``import``: ``import_bench.py --rows 1000000 --repeat 1`` — rows/s (CPU).

Writes its section of docs/benchmarks.md unless ``--no-docs``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from import_bench import replace_section  # noqa: E402

START, END = "<!-- compare-bench:start -->", "<!-- compare-bench:end -->"


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _send(out: str) -> dict[str, list[float]]:
    m = re.search(r"platform\s+([\d,]+) msg/s \(([\d.]+) CPU s/1k, RSS (\d+) MB", out)
    if m is None:
        raise ValueError("no send figures in the output")
    return {"msg/s": [_num(m[1])], "CPU s per 1,000 msgs": [_num(m[2])], "worker peak RSS MB": [_num(m[3])]}


def _tracking(out: str) -> dict[str, list[float]]:
    lines = re.findall(r"runs, events/s \([^)]*\): (.*?); median", out)
    if not lines:
        raise ValueError("no tracking figures in the output")
    rates = [_num(r) for r in re.findall(r"([\d,]+) \(x[\d.]+\)", lines[-1])]
    cpu = [_num(a) + _num(b) for a, b in re.findall(r"(\d+) µs \(server\) \+ (\d+) µs \(worker\)", out)]
    figures = {"events/s": rates}
    if cpu:
        figures["CPU µs per event (server + worker, median run)"] = cpu[-1:]
    return figures


def _import(out: str) -> dict[str, list[float]]:
    m = re.search(r"import ([\d,]+) rows/s wall, ([\d,]+) rows/s CPU", out)
    if m is None:
        raise ValueError("no import figures in the output")
    return {"rows/s (CPU)": [_num(m[2])], "rows/s (wall)": [_num(m[1])]}


@dataclass(frozen=True)
class Bench:
    script: str
    args: tuple[str, ...]
    parse: Callable[[str], dict[str, list[float]]]
    higher_is_better: dict[str, bool]


BENCHES: dict[str, Bench] = {
    "send": Bench("send_bench.py", ("--configs", "none", "--sizes", "100000", "--no-bare", "--no-docs"), _send,
                  {"msg/s": True, "CPU s per 1,000 msgs": False, "worker peak RSS MB": False}),
    "tracking": Bench("tracking_bench.py", ("--only", "http", "--repeat", "3", "--no-docs"), _tracking,
                      {"events/s": True, "CPU µs per event (server + worker, median run)": False}),
    "import": Bench("import_bench.py", ("--rows", "1000000", "--repeat", "1", "--no-docs"), _import,
                    {"rows/s (CPU)": True, "rows/s (wall)": True}),
}


@dataclass
class Side:
    label: str
    tree: Path
    figures: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, bench: str, got: dict[str, list[float]]) -> None:
        mine = self.figures.setdefault(bench, {})
        for name, values in got.items():
            mine.setdefault(name, []).extend(values)


def run_one(side: Side, bench: str, extra: tuple[str, ...]) -> None:
    b = BENCHES[bench]
    env = {**os.environ, "PYTHONPATH": str(side.tree / "src")}
    cmd = [sys.executable, str(side.tree / "bench" / b.script), *b.args, *extra]
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, cwd=side.tree, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{side.label} {bench} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}"
                         f"\n{proc.stderr[-2000:]}")
    got = b.parse(proc.stdout)
    side.add(bench, got)
    shown = "; ".join(f"{k} " + ", ".join(f"{v:,.4g}" for v in vs) for k, vs in got.items())
    print(f"  {side.label:<5} {bench:<8} (load {load:.1f}) {shown}", flush=True)


def verdict(base: list[float], head: list[float], higher_is_better: bool) -> tuple[float, float, str]:
    """Change of the head's median against the base's (a fraction), the noise band (the
    larger half-range of either side, as a fraction of its median) and the word for it."""
    mb, mh = statistics.median(base), statistics.median(head)
    change = mh / mb - 1 if mb else 0.0

    def half_range(xs: list[float]) -> float:
        med = statistics.median(xs)
        return (max(xs) - min(xs)) / 2 / med if med else 0.0

    band = max(half_range(base), half_range(head))
    better = change > 0 if higher_is_better else change < 0
    if abs(change) <= band or len(base) < 2:
        word = "within noise" if len(base) >= 2 else "one run each: no noise band"
    else:
        word = "better" if better else "WORSE by more than noise"
    return change, band, word


def section(base_rev: str, head_rev: str, sides: tuple[Side, Side], rounds: int, loads: tuple[float, float],
            chosen: list[str]) -> str:
    base, head = sides
    today = dt.date.today().isoformat()
    out = [
        "## Side by side with an earlier commit (`bench/compare.py`)",
        "",
        f"{today}: `python bench/compare.py --base {base_rev}` on the project's 2-vCPU machine, {rounds} "
        f"rounds, the two trees alternating which runs first; load average {loads[0]:.1f} at the start and "
        f"{loads[1]:.1f} at the end.  Base `{base_rev}`, head `{head_rev}`.  \"Noise\" is the larger "
        "half-range of either side's runs.",
        "",
        "| benchmark | figure | base runs | head runs | base median | head median | change | noise | verdict |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for bench in chosen:
        for name, better in BENCHES[bench].higher_is_better.items():
            b = base.figures.get(bench, {}).get(name)
            h = head.figures.get(bench, {}).get(name)
            if not b or not h:
                continue
            change, band, word = verdict(b, h, better)
            out.append(
                f"| {bench} | {name} | {', '.join(f'{v:,.4g}' for v in b)} | {', '.join(f'{v:,.4g}' for v in h)} "
                f"| {statistics.median(b):,.4g} | {statistics.median(h):,.4g} | {change:+.1%} | ±{band:.1%} | {word} |"
            )
    return "\n".join(out) + "\n"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="the commit to compare against")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    p.add_argument("--base-variant", help="tracking_bench variant for the base (e.g. serve+asgi)")
    p.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args()

    base_rev = git("rev-parse", "--short", args.base)
    head_rev = git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "src") else "")
    tmp = Path(tempfile.mkdtemp(prefix="lunamail-compare-"))
    tree = tmp / "base"
    git("worktree", "add", "--detach", str(tree), base_rev)
    try:
        sides = (Side("base", tree), Side("head", ROOT))
        start_load = os.getloadavg()[0]
        for r in range(args.rounds):
            order = sides if r % 2 == 0 else sides[::-1]
            print(f"round {r + 1} of {args.rounds}", flush=True)
            for bench in args.only:
                for side in order:
                    extra: tuple[str, ...] = ()
                    if bench == "tracking" and side.label == "base" and args.base_variant:
                        extra = ("--variant", args.base_variant)
                    run_one(side, bench, extra)
        text = section(base_rev, head_rev, sides, args.rounds, (start_load, os.getloadavg()[0]), args.only)
        print(text)
        if not args.no_docs:
            replace_section(START, END, text)
    finally:
        git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
