"""Copy the front-end files from node_modules into the package: the API docs' (Swagger
UI, ReDoc), so ``/docs`` and ``/redoc`` work with no network, and the web console's
(htmx, CodeMirror 5, uPlot).  Run by ``make`` and by the wheel build (``setup.py``); runs
``npm ci`` first when node_modules is missing or older than package-lock.json.  The
copies are build output (git-ignored), never committed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "node_modules"
TARGET = ROOT / "src" / "lunamail" / "entrypoints" / "http" / "static" / "docs"
CONSOLE = ROOT / "src" / "lunamail" / "entrypoints" / "web" / "static" / "vendor"
# (package, file in the package, name in the target)
FILES = [
    ("swagger-ui-dist", "swagger-ui-bundle.js", "swagger-ui-bundle.js"),
    ("swagger-ui-dist", "swagger-ui.css", "swagger-ui.css"),
    ("swagger-ui-dist", "favicon-32x32.png", "favicon.png"),
    ("swagger-ui-dist", "LICENSE", "swagger-ui.LICENSE"),
    ("redoc", "bundles/redoc.standalone.js", "redoc.standalone.js"),
    ("redoc", "LICENSE", "redoc.LICENSE"),
]
CONSOLE_FILES = [
    ("htmx.org", "dist/htmx.min.js", "htmx.min.js"),
    ("uplot", "dist/uPlot.iife.min.js", "uPlot.iife.min.js"),
    ("uplot", "dist/uPlot.min.css", "uPlot.min.css"),
    ("codemirror", "lib/codemirror.js", "codemirror.js"),
    ("codemirror", "lib/codemirror.css", "codemirror.css"),
    ("codemirror", "mode/xml/xml.js", "cm-xml.js"),
    ("codemirror", "mode/css/css.js", "cm-css.js"),
    ("codemirror", "mode/javascript/javascript.js", "cm-javascript.js"),
    ("codemirror", "mode/htmlmixed/htmlmixed.js", "cm-htmlmixed.js"),
]


def _stale() -> bool:
    marker = MODULES / ".package-lock.json"  # npm writes it on every install
    lock = ROOT / "package-lock.json"
    return not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime


def main() -> int:
    if _stale():
        npm = shutil.which("npm")
        if npm is None:
            print("docs assets: npm is needed (the nodejs/npm packages) to fetch Swagger UI and ReDoc",
                  file=sys.stderr)
            return 1
        subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=ROOT, check=True)
    for folder, files in ((TARGET, FILES), (CONSOLE, CONSOLE_FILES)):
        folder.mkdir(parents=True, exist_ok=True)
        for package, name, target in files:
            src, dst = MODULES / package / name, folder / target
            if not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime or dst.stat().st_size != src.stat().st_size:
                shutil.copy2(src, dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
