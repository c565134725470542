"""The figure sheet of the hostile-input suite: every case records what it tried, how many
inputs were refused cleanly and how many did harm; the run prints the totals per category.

Rows go to a JSON-lines file named by ``LUNAMAIL_HOSTILE_SHEET`` (set once by the conftest,
inherited by xdist workers), so the sheet covers every worker of the run."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

ENV = "LUNAMAIL_HOSTILE_SHEET"


def record(category: str, case: str, tried: int, refused: int, harm: int) -> None:
    """One row; ``refused`` are the inputs answered with a clean refusal (or, for inputs that
    are valid but hostile, handled within bounds), ``harm`` the ones that were not."""
    path = os.environ.get(ENV)
    if not path:
        return
    row = {"category": category, "case": case, "tried": tried, "refused": refused, "harm": harm}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def render(path: Path) -> list[str]:
    """The sheet's lines: one per category, then the totals."""
    if not path.exists():
        return []
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for line in path.read_text("utf-8").splitlines():
        row = json.loads(line)
        t = totals[row["category"]]
        t[0] += 1
        t[1] += row["tried"]
        t[2] += row["refused"]
        t[3] += row["harm"]
    if not totals:
        return []
    lines = [f"{'category':<12} {'cases':>6} {'tried':>8} {'refused cleanly':>16} {'harm':>5}"]
    for name in sorted(totals):
        c, tried, refused, harm = totals[name]
        lines.append(f"{name:<12} {c:>6} {tried:>8} {refused:>16} {harm:>5}")
    c, tried, refused, harm = (sum(t[i] for t in totals.values()) for i in range(4))
    lines.append(f"{'total':<12} {c:>6} {tried:>8} {refused:>16} {harm:>5}")
    return lines
