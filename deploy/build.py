"""Build the Lambda code of ``template.yaml`` into ``deploy/.build/`` and check it imports.

    python deploy/build.py                 # for the template's runtime: Linux arm64, CPython 3.13
    python deploy/build.py --local --check # for this machine, then import every handler from it

The artifact is the package and every dependency as ``pip install --target`` lays them
out, with binary wheels only (``--only-binary=:all:``) for the template's platform.
Nothing is stripped: compiled modules (``orjson``, ``cryptography``, ``pydantic-core``...)
stay as their wheels ship them.  ``--check`` starts a fresh, isolated interpreter whose
only path is the artifact and imports each handler the template names, printing the
import time of each (the cold start's import part) and the artifact's size; it fails
when one does not import.  Only a build for this machine can be checked here.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
OUT = DEPLOY / ".build"
TEMPLATE = DEPLOY / "template.yaml"
STACKS = DEPLOY / "stacks"
# What the template's Globals name; the build must match them.
PLATFORM = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}

_PROBE = """
import importlib, sys, time
t0 = time.perf_counter()
module, _, attr = sys.argv[1].rpartition(".")
if not callable(getattr(importlib.import_module(module), attr, None)):
    raise SystemExit(f"{sys.argv[1]}: {attr} is not a callable in {module}")
print(time.perf_counter() - t0)
"""


def template_target() -> tuple[str, str, list[str]]:
    """(runtime, architecture, handlers) named by the template."""
    targets, handlers = set(), set()
    for path in sorted(STACKS.glob("*.yaml")):  # the root's nested stacks hold the functions
        doc = yaml.safe_load(path.read_text("utf-8"))
        glob = doc.get("Globals", {}).get("Function")
        if glob is None:
            continue
        targets.add((str(glob["Runtime"]), str((glob.get("Architectures") or ["x86_64"])[0])))
        for res in doc["Resources"].values():
            if res["Type"] == "AWS::Serverless::Function":
                handlers.add(res["Properties"].get("Handler", glob["Handler"]))
    if len(targets) != 1:
        raise SystemExit(f"the stacks name {len(targets)} runtimes: {sorted(targets)}")
    [(runtime, arch)] = targets
    return runtime, arch, sorted(handlers)


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def build(out: Path, *, local: bool) -> Path:
    """Install the project and its dependencies into ``out`` (emptied first)."""
    runtime, arch, _ = template_target()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        # the project itself as a wheel, so the platform install below needs no build step
        _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", tmp, str(ROOT))
        [wheel] = Path(tmp).glob("lunamail-*.whl")
        target = ["--quiet", "install", "--target", str(out), "--only-binary=:all:"]
        if not local:
            version = runtime.removeprefix("python")
            target += ["--platform", PLATFORM[arch], "--implementation", "cp",
                       "--python-version", version]
        _pip(*target, str(wheel))
    if not local and runtime != f"python{sys.version_info.major}.{sys.version_info.minor}":
        # pip compiled the bytecode for this interpreter, which the runtime cannot use
        for cache in out.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
    return out


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def check(out: Path) -> dict[str, float]:
    """Import each handler from ``out`` alone, in a fresh interpreter per handler (a cold
    start each): ``-I -S`` leave out site-packages, the user site, the environment and the
    current directory, so only the artifact and the standard library can be found.
    Returns seconds per handler."""
    _, _, handlers = template_target()
    code = f"import sys; sys.path.insert(0, {str(out)!r}); exec({_PROBE!r})"
    times: dict[str, float] = {}
    for handler in handlers:
        proc = subprocess.run(
            [sys.executable, "-S", "-I", "-c", code, handler], capture_output=True, text=True,
            cwd=tempfile.gettempdir(), check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{handler} does not import from {out}:\n{proc.stderr or proc.stdout}")
        times[handler] = float(proc.stdout.strip().splitlines()[-1])
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--local", action="store_true", help="build for this machine, not Lambda")
    parser.add_argument("--check", action="store_true", help="import every handler from the build")
    args = parser.parse_args(argv)
    if args.check and not args.local:
        parser.error("--check imports the build here: build it for this machine (--local)")
    out = build(args.out, local=args.local)
    print(f"built {out} ({size_of(out) / 1e6:.1f} MB)")
    if args.check:
        for handler, seconds in check(out).items():
            print(f"{handler}: imports in {seconds * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
