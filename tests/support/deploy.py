"""The deploy scripts (``deploy/generate.py``, ``deploy/build.py``) as modules, for tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def deploy_module(name: str) -> ModuleType:
    """``deploy/<name>.py``, loaded fresh (it is not a package)."""
    spec = importlib.util.spec_from_file_location(f"lunamail_deploy_{name}", DEPLOY / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
