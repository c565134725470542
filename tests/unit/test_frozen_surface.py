"""What must not drift without anyone noticing: message names and versions (they are on
queues and in dead-letter queues), queue names (a renamed handler strands its queue),
and the public Python surface of ``lunamail`` (the application layer's use cases and
types, the settings).  Each is compared with ``frozen_surface.json``.

Adding is fine: add it to the file.  Renaming or removing is a migration: a renamed
message keeps its old name in ``lunamail.domain.messages.RENAMED`` (tested below), and
the file changes in the same commit."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil
from pathlib import Path
from typing import Any

import lunamail.app
from lunamail.app.base import USE_CASES
from lunamail.config import Settings
from lunamail.domain import messages
from lunamail.runtime.routing import default_router

FROZEN = Path(__file__).with_name("frozen_surface.json")


def current() -> dict[str, Any]:
    router = default_router()  # imports every handler, hence every message module
    app_names: dict[str, list[str]] = {}
    for mod in sorted(pkgutil.iter_modules(lunamail.app.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"lunamail.app.{mod.name}")
        app_names[mod.name] = sorted(
            name for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
            and (inspect.isfunction(value) or inspect.isclass(value))
        )  # fmt: skip
    return {
        # the product's messages only: test modules register their own (runtime_test.*), and
        # whether one was imported first depends on how the run spreads tests over workers
        "messages": {name: cls.VERSION for name, cls in sorted(messages.registry().items())
                     if cls.__module__.startswith("lunamail.")},
        "queues": sorted(router.queues()),
        "use_cases": {name: uc.permission.value for name, uc in sorted(USE_CASES.items())},
        "app": app_names,
        "settings": [f.name for f in dataclasses.fields(Settings)],
    }


def test_the_surface_is_the_frozen_one() -> None:
    frozen = json.loads(FROZEN.read_text("utf-8"))
    now = current()
    gone = {k: sorted(set(frozen[k]) - set(now[k])) for k in ("messages", "queues", "use_cases", "settings")}
    gone["messages"] = [n for n in gone["messages"] if messages.RENAMED.get(n) not in now["messages"]]
    assert not any(gone.values()), f"removed or renamed without a migration: {gone}"
    changed = {n: (v, now["messages"][n]) for n, v in frozen["messages"].items() if now["messages"].get(n, v) != v}
    assert not changed, f"message versions changed: {changed} (a new version is a migration: update the file)"
    assert now == frozen, (
        f"the surface grew or moved: regenerate {FROZEN.name} with "
        "`python tests/unit/test_frozen_surface.py` and commit it with the change"
    )


def test_a_renamed_message_still_decodes_under_its_old_name(monkeypatch: Any) -> None:
    default_router()
    name, cls = next(iter(sorted(messages.registry().items())))
    monkeypatch.setitem(messages.RENAMED, "old.Name", name)
    fields = {f.name: "x" for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
              and f.default_factory is dataclasses.MISSING}  # fmt: skip
    msg = messages.from_dict({"name": "old.Name", "version": 1, "body": fields})
    assert type(msg) is cls


if __name__ == "__main__":  # regenerate the frozen file
    FROZEN.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n", "utf-8")
