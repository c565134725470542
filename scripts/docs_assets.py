"""Copy the API docs' front-end files (Swagger UI, ReDoc) from node_modules into the
package, so ``/docs`` and ``/redoc`` work with no network.  Run by ``make`` and by the
wheel build (``setup.py``); runs ``npm ci`` first when node_modules is missing or older
than package-lock.json.  The copies are build output (git-ignored), never committed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "node_modules"
TARGET = ROOT / "src" / "lunamail" / "entrypoints" / "http" / "static" / "docs"
# (package, file in the package, name in the target)
FILES = [
    ("swagger-ui-dist", "swagger-ui-bundle.js", "swagger-ui-bundle.js"),
    ("swagger-ui-dist", "swagger-ui.css", "swagger-ui.css"),
    ("swagger-ui-dist", "favicon-32x32.png", "favicon.png"),
    ("swagger-ui-dist", "LICENSE", "swagger-ui.LICENSE"),
    ("redoc", "bundles/redoc.standalone.js", "redoc.standalone.js"),
    ("redoc", "LICENSE", "redoc.LICENSE"),
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
    TARGET.mkdir(parents=True, exist_ok=True)
    for package, name, target in FILES:
        src, dst = MODULES / package / name, TARGET / target
        if not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime or dst.stat().st_size != src.stat().st_size:
            shutil.copy2(src, dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
