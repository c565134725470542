"""Run every benchmark script in bench/ in turn (``make bench``).

    python bench/run_all.py [--quick] [--only send_bench hotpath_bench ...]

A benchmark script is a ``*_bench.py`` file next to this one.  Each runs in its own
process (so one's memory and threads never disturb the next), in name order; each
rewrites its own section of docs/benchmarks.md.  ``--quick`` is passed on to the
scripts that accept it.  Exits non-zero if any script failed, after running the rest.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scripts() -> list[Path]:
    return sorted(p for p in HERE.glob("*_bench.py") if p.is_file())


def accepts_quick(script: Path) -> bool:
    return "--quick" in script.read_text("utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="pass --quick to the scripts that have it")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these scripts (name without .py)")
    args = ap.parse_args()
    chosen = [s for s in scripts() if not args.only or s.stem in args.only]
    if not chosen:
        print("no benchmark scripts selected", file=sys.stderr)
        return 2
    failed: list[str] = []
    for script in chosen:
        cmd = [sys.executable, str(script)]
        if args.quick and accepts_quick(script):
            cmd.append("--quick")
        print(f"== {script.name} (load average {os.getloadavg()[0]:.2f})", flush=True)
        t = time.perf_counter()
        rc = subprocess.run(cmd, cwd=HERE.parent).returncode
        print(f"== {script.name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in "
              f"{time.perf_counter() - t:.0f}s", flush=True)
        if rc != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
