"""The whole suite: hypothesis without per-example deadlines, and the hostile-input figure
sheet (tests/hostile/sheet.py) printed at the end."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

from tests.hostile import sheet

# The suite shares two cores with its servers and subprocesses: a per-example
# deadline only measures how busy the machine is, so no property test gets one.
settings.register_profile("lunamail", deadline=None)
settings.load_profile("lunamail")


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(sheet.ENV):  # the controller; xdist workers inherit it
        fd, path = tempfile.mkstemp(prefix="lunamail-hostile-", suffix=".jsonl")
        os.close(fd)
        os.environ[sheet.ENV] = path
        config.stash[_OWNED] = path


_OWNED = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    path = config.stash.get(_OWNED, None)
    if path is None:
        return
    lines = sheet.render(Path(path))
    if lines:
        terminalreporter.section("hostile inputs: tried / refused cleanly / harm")
        for line in lines:
            terminalreporter.write_line(line)
    Path(path).unlink(missing_ok=True)
