"""Cold start of the Lambda functions: import time of each handler module, the largest
imports, and the size of the artifact ``deploy/build.py`` makes.

    python bench/coldstart_bench.py [--runs 5] [--no-docs]

Builds the artifact for this machine (the template's arm64 Lambda build is also made,
for its size, when the package index can be reached), then imports every handler the
template names in a fresh isolated interpreter whose only path is the artifact, ``--runs``
times each (median reported; each run is a cold start with the bytecode already compiled,
as in a deployed artifact built on the runtime's Python).  ``-X importtime`` of one more
run names the largest imports.  Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- coldstart-bench:start -->", "<!-- coldstart-bench:end -->"


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lunamail_deploy_build", ROOT / "deploy" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def zipped_mb(path: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "code.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(path.rglob("*")):
                if f.is_file():
                    z.write(f, f.relative_to(path))
        return archive.stat().st_size / 1e6


def largest_imports(out: Path, handler: str, top: int = 6) -> list[tuple[str, float]]:
    """The packages with the largest cumulative import time (``-X importtime``): each
    distribution's top-level package (``fastapi``, ``boto3``, ``email``...), in ms;
    Lunamail's own modules and the interpreter's start-up are left out."""
    module = handler.rpartition(".")[0]
    code = f"import sys; sys.path.insert(0, {str(out)!r}); import {module}"
    proc = subprocess.run([sys.executable, "-S", "-I", "-X", "importtime", "-c", code],
                          capture_output=True, text=True, cwd=tempfile.gettempdir(), check=True)
    best: dict[str, float] = {}
    startup = {"encodings", "io", "zipimport", "codecs", "abc", "site", "os", "stat", "posixpath"}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if not m or "." in m.group(2):
            continue
        name = m.group(2)
        if name.startswith("_") or name in startup or name == "lunamail":
            continue
        best[name] = max(best.get(name, 0.0), int(m.group(1)) / 1000)
    return sorted(best.items(), key=lambda kv: -kv[1])[:top]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--no-docs", action="store_true")
    args = p.parse_args()
    build = _builder()
    runtime, arch, handlers = build.template_target()
    with tempfile.TemporaryDirectory() as tmp:
        local = build.build(Path(tmp) / "local", local=True)
        local_mb, local_zip = build.size_of(local) / 1e6, zipped_mb(local)
        runs: dict[str, list[float]] = {h: [] for h in handlers}
        for _ in range(args.runs):
            for handler, seconds in build.check(local).items():
                runs[handler].append(seconds * 1000)
        imports = {h: largest_imports(local, h) for h in handlers}
        try:
            target = build.build(Path(tmp) / "lambda", local=False)
            lambda_size = f"{build.size_of(target) / 1e6:.1f} MB unzipped, {zipped_mb(target):.1f} MB zipped"
        except subprocess.CalledProcessError as exc:
            lambda_size = f"not built here ({exc})"
    load = os.getloadavg()[0]
    lines = [
        "## Lambda cold start (`bench/coldstart_bench.py`)",
        "",
        f"Import time of each function's handler module from the artifact `deploy/build.py` "
        f"builds, each in a fresh isolated interpreter whose only path is the artifact (median "
        f"of {args.runs} cold starts, bytecode compiled; Python {sys.version.split()[0]} on this "
        f"box, load average {load:.2f}). Lambda adds its own init (runtime start, the first "
        f"event's client connections) on top.",
        "",
        "| handler | import (median, ms) | runs (ms) | largest imports (cumulative ms) |",
        "|---|---|---|---|",
    ]
    for handler in handlers:
        ms = runs[handler]
        top = ", ".join(f"`{name}` {t:.0f}" for name, t in imports[handler])
        lines.append(f"| `{handler}` | {statistics.median(ms):.0f} | "
                     f"{', '.join(f'{x:.0f}' for x in ms)} | {top} |")
    lines += [
        "",
        f"Artifact: for this machine {local_mb:.1f} MB unzipped ({local_zip:.1f} MB zipped); for the "
        f"template's runtime ({runtime}, {arch}): {lambda_size}. Lambda's limits are 250 MB "
        f"unzipped and 50 MB for a zip uploaded directly (larger zips go through S3, as "
        f"`sam deploy` does).",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_docs:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from import_bench import replace_section

        replace_section(START, END, text)


if __name__ == "__main__":
    main()
