"""Hostile CSV: the reader never raises or loses a row silently on any bytes (bounded
fuzzing), an over-limit file is refused by the CLI before it is copied, and every CSV the
product writes neutralises spreadsheet formulas."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lunamail.app.reports import write_csv
from lunamail.domain.audience import ImportChunk
from lunamail.entrypoints.cli.main import app as cli
from lunamail.lib import csvsafe
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.audience import api, handlers
from lunamail.services.audience.errors import InvalidInput
from tests.hostile import sheet

_SYSTEM = bootstrap_in(Path(tempfile.mkdtemp(prefix="hostile-csv")) / "data")
api.create_list(_SYSTEM.deps, "default", "fuzz")
_N = [0]

_LINE = st.lists(st.sampled_from(['"', ",", ";", "\t", "a", "b@example.com", "é", "\r", "=1+1", " "]),
                 max_size=12).map("".join)
_FILES = (st.lists(_LINE, min_size=1, max_size=30).map(lambda ls: ("email,name\n" + "\n".join(ls)).encode())
          | st.binary(max_size=400))


def _import(data: bytes) -> dict[str, Any] | None:
    deps = _SYSTEM.deps
    _N[0] += 1
    key = f"uploads/fuzz{_N[0]}.csv"
    deps.blobs.put_stream(key, io.BytesIO(data))
    try:
        _job, cmd = api.start_import(deps, "default", "fuzz", key)
    except InvalidInput:
        return None  # refused as a whole, with its message
    nxt: ImportChunk | None = cmd
    while nxt is not None:
        nxt = next((m for m in handlers.import_chunk(nxt, deps) if isinstance(m, ImportChunk)), None)
    return api.get_import(deps, "default", cmd.import_id)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_FILES)
def test_any_bytes_import_or_are_refused_and_every_row_is_accounted_for(data: bytes) -> None:
    job = _import(data)
    if job is None:
        return
    assert job["status"] == "completed"
    # nothing vanishes: every row read is imported, updated, skipped or rejected
    accounted = job["imported"] + job["updated"] + job["skipped"] + job["rejected"]
    assert accounted == job["rows"], job


def test_the_cli_refuses_an_over_limit_file_before_copying_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    big = tmp_path / "big.csv"
    big.write_bytes(b"email\n" + b"a@example.com\n" * 2000)  # 28 KB, over a 10 KB limit
    env = {"LUNAMAIL_DATA_DIR": str(data), "LUNAMAIL_MAX_UPLOAD_BYTES": "10000"}
    runner = CliRunner()
    assert runner.invoke(cli, ["init"], env=env).exit_code == 0
    assert runner.invoke(cli, ["lists", "create", "News"], env=env).exit_code == 0
    result = runner.invoke(cli, ["import", str(big), "--list", "News", "--json"], env=env)
    copied = [p for p in (data / "blobs").rglob("*") if p.is_file()] if (data / "blobs").exists() else []
    ok = result.exit_code != 0 and "payload_too_large" in result.output and not copied
    sheet.record("csv", "over-limit file to the CLI", 1, int(ok), int(not ok))
    assert result.exit_code != 0 and "payload_too_large" in result.output, result.output
    assert copied == []


def test_exports_neutralise_formulas() -> None:
    hostile = ["=cmd|' /C calc'!A0@x.example", "+1@x.example", "-2@x.example", "@SUM(A1)@x.example",
               "\t=1@x.example", "\r=1@x.example", "plain@x.example"]
    out = io.StringIO()
    write_csv(({"email": e} for e in hostile), out)
    cells = [r[0] for r in csv.reader(io.StringIO(out.getvalue(), newline=""))][1:]
    bad = [c for c in cells if c.startswith(csvsafe.FORMULA_STARTS)]
    sheet.record("csv", "formula cells in an export", len(hostile), len(hostile) - len(bad), len(bad))
    assert bad == []
    assert cells[-1] == "plain@x.example"
