"""Only a build hook; the project is described in pyproject.toml.

A wheel or sdist build copies the front-end files (Swagger UI and ReDoc for the API
docs; htmx, CodeMirror and uPlot for the console; from the npm packages in
package-lock.json) into the package first, so an installed Lunamail serves ``/docs`` and
the console with no network.  Editable installs leave that to ``make``.
"""

import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithDocsAssets(build_py):
    def run(self) -> None:
        script = Path(__file__).resolve().parent / "scripts" / "docs_assets.py"
        if not getattr(self, "editable_mode", False) and script.exists():
            subprocess.run([sys.executable, str(script)], check=True)
        super().run()


setup(cmdclass={"build_py": BuildPyWithDocsAssets})
