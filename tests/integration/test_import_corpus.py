"""The bad-CSV corpus imported on the real SQLite store and file blobs.

Each file either fails as a whole with one clear message and imports nothing,
or imports cleanly in part with an error report naming every rejected line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lunamail.domain.audience import ImportChunk
from lunamail.ports.deps import Deps
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.services.audience import api, handlers
from lunamail.services.audience.errors import InvalidInput

CORPUS = Path(__file__).parents[1] / "data" / "csv"
A = "default"


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    with bootstrap_in(tmp_path / "data", settings_overrides={"import_chunk_rows": 1000}) as s:
        yield s


@pytest.fixture
def deps(system: System) -> Deps:
    api.create_list(system.deps, A, "news")
    return system.deps


def upload(deps: Deps, path: Path) -> str:
    key = f"uploads/{path.name}"
    with path.open("rb") as f:
        deps.blobs.put_stream(key, f)
    return key


def run(deps: Deps, path: Path, **kw: Any) -> dict[str, Any]:
    _job, cmd = api.start_import(deps, A, "news", upload(deps, path), **kw)
    nxt: ImportChunk | None = cmd
    while nxt is not None:
        nxt = next((m for m in handlers.import_chunk(nxt, deps) if isinstance(m, ImportChunk)), None)
    return api.get_import(deps, A, cmd.import_id)


def report(deps: Deps, job: dict[str, Any]) -> list[str]:
    return deps.blobs.get(job["error_report"]).decode("utf-8").splitlines()


def members(deps: Deps) -> dict[str, dict[str, Any]]:
    rows, _ = api.list_subscribers(deps, A, "news", limit=1000)
    return {r["email"]: r for r in rows}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.csv", "the file is empty"),
        ("blank_lines.csv", "the file is empty"),
        ("binary.csv", "the file is binary (or UTF-16), not CSV text; save it as CSV (UTF-8)"),
        ("no_email_column.csv", "no email column found (columns: name, city); name one with --map COLUMN=email"),
    ],
)
def test_whole_file_errors_import_nothing(deps: Deps, name: str, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        api.start_import(deps, A, "news", upload(deps, CORPUS / name))
    assert str(e.value) == message
    assert members(deps) == {}


def test_invalid_addresses_are_reported_by_line(deps: Deps) -> None:
    job = run(deps, CORPUS / "invalid_addresses.csv")
    assert (job["status"], job["imported"], job["rejected"]) == ("completed", 3, 4)
    assert sorted(members(deps)) == ["Eve@example.org", "ann@example.com", "carl@example.com"]
    assert report(deps, job) == [
        "line,column,value,reason",
        "3,Email,not-an-address,invalid email address: missing @",
        "5,Email,d@@example.com,invalid email address: more than one @",
        "7,Email,,invalid email address: empty address",
        "8,Email,frank@localhost,invalid email address: domain has no dot",
    ]


def test_ragged_rows_are_rejected_and_blank_lines_ignored(deps: Deps) -> None:
    job = run(deps, CORPUS / "ragged.csv")
    assert (job["imported"], job["rejected"], job["rows"]) == (2, 2, 4)
    assert report(deps, job)[1:] == [
        "3,,,\"row has 2 fields, the header has 3\"",
        "4,,,\"row has 4 fields, the header has 3\"",
    ]


def test_multiline_quoted_fields_keep_line_numbers_right(deps: Deps) -> None:
    job = run(deps, CORPUS / "multiline.csv")
    assert (job["imported"], job["rejected"], job["duplicates"]) == (2, 1, 1)
    assert report(deps, job)[1:] == ["5,email,bad-address,invalid email address: missing @"]
    m = members(deps)
    assert m["ann@example.com"]["fields"]["notes"] == "line one\nline two\nline three"
    assert m["carl@example.com"]["fields"]["notes"] == 'a "quoted" word'


@pytest.mark.parametrize(
    ("name", "encoding", "delimiter", "expected"),
    [
        ("cp1252.csv", "cp1252", ",", {"rene@example.com": ("René", {"city": "Zürich"}), "zoe@example.com": ("Zoë", {"city": "Köln"})}),
        ("bom.csv", "utf-8", ",", {"ann@example.com": ("Anné", {}), "bob@example.com": ("Bob", {})}),
        ("semicolon.csv", "utf-8", ";", {"ann@example.com": ("Ann", {"town": "Paris"}), "bob@example.com": ("Bob; Jr", {"town": "Rome"})}),
        ("tab.tsv", "utf-8", "\t", {"ann@example.com": ("Ann", {}), "bob@example.com": ("Bob", {})}),
    ],
)  # fmt: skip
def test_encodings_and_delimiters(
    deps: Deps, name: str, encoding: str, delimiter: str, expected: dict[str, tuple[str, dict[str, str]]]
) -> None:
    job = run(deps, CORPUS / name)
    assert (job["encoding"], job["delimiter"], job["rejected"], job["error_report"]) == (encoding, delimiter, 0, None)
    assert {e: (s["name"], s["fields"]) for e, s in members(deps).items()} == expected


def test_a_file_without_header_uses_the_column_of_addresses(deps: Deps) -> None:
    job = run(deps, CORPUS / "no_header.csv")
    assert job["columns"] == {"column 1": "email", "column 2": "column_2"}
    assert (job["imported"], job["rejected"]) == (2, 1)
    assert report(deps, job)[1:] == ["3,column 1,nope,invalid email address: missing @"]


def test_a_late_line_that_is_not_utf8_is_rejected_not_the_import(deps: Deps, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    with path.open("wb") as f:
        f.write(b"email,name\n")
        for i in range(3000):  # > 64 KB of clean UTF-8, so the file is decided to be UTF-8
            f.write(f"user{i}@example.com,Zoë {i}\n".encode())
        f.write(b"bad@example.com,Ren\xe9\n")
        f.write(b"after@example.com,Ok\n")
    job = run(deps, path)
    assert (job["encoding"], job["imported"], job["rejected"]) == ("utf-8", 3001, 1)
    assert report(deps, job)[1:] == ["3002,,,not valid UTF-8 text (byte 0xe9 at byte 20 of the line)"]
    assert api.get_subscriber(deps, A, "news", "user2999@example.com")["name"] == "Zoë 2999"


def test_huge_fields_are_rejected_without_reading_them_whole(deps: Deps, tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as f:
        f.write(b"email,name,notes\na@example.com,A,short\nb@example.com,B,")
        block = b"x" * (1 << 20)
        for _ in range(10):  # a 10 MB field
            f.write(block)
        f.write(b"\nc@example.com,C," + b"y" * 100_000 + b"\nd@example.com,D,ok\n")
    job = run(deps, path)
    assert (job["imported"], job["rejected"]) == (2, 2)
    assert report(deps, job)[1:] == [
        "3,,,row too large (a line over 1048576 bytes)",
        '4,,,"field too large (over 65536 characters); skipped, the import goes on at the next line"',
    ]
    assert sorted(members(deps)) == ["a@example.com", "d@example.com"]


def test_many_chunks_write_one_report_and_exact_counters(deps: Deps, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as f:
        f.write("email,name\n")
        for i in range(4500):
            f.write(f"u{i}@example.com,U{i}\n" if i % 1000 != 7 else f"broken{i},X\n")
    job = run(deps, path)
    assert (job["imported"], job["rejected"], job["rows"]) == (4495, 5, 4500)
    assert [r.split(",")[0] for r in report(deps, job)[1:]] == [str(i + 2) for i in (7, 1007, 2007, 3007, 4007)]
    assert api.count_by_status(deps, A, "news")["subscribed"] == 4495
    assert list(deps.blobs.list(f"imports/{A}/")) == [job["error_report"]]  # parts were merged


def test_an_unterminated_quote_rejects_its_line_and_the_import_goes_on(deps: Deps) -> None:
    job = run(deps, CORPUS / "unterminated_quote.csv")
    assert (job["status"], job["imported"], job["rejected"]) == ("completed", 4, 1)
    assert sorted(members(deps)) == ["ann@example.com", "carl@example.com", "dora@example.com", "eve@example.com"]
    assert report(deps, job)[1:] == [
        '3,,,"unterminated quote (the row would run over 4 lines); skipped, the import goes on at the next line"',
    ]


def test_a_stray_byte_early_in_a_utf8_file_is_one_rejected_line_not_mojibake(deps: Deps) -> None:
    job = run(deps, CORPUS / "stray_byte_early.csv")
    assert (job["encoding"], job["imported"], job["rejected"]) == ("utf-8", 5, 1)
    assert report(deps, job)[1:] == ["4,,,not valid UTF-8 text (byte 0xe9 at byte 22 of the line)"]
    assert api.get_subscriber(deps, A, "news", "user4@example.com")["name"] == "Zoë 4"


def test_the_error_report_neutralises_spreadsheet_formulas(deps: Deps) -> None:
    job = run(deps, CORPUS / "formula_injection.csv")
    assert (job["imported"], job["rejected"]) == (1, 3)
    lines = report(deps, job)
    assert lines[1:] == [
        "2,email,'=cmd|' /C calc'!A0,invalid email address: missing @",
        "3,email,'@SUM(1+1)@example.com,invalid email address: more than one @",
        "5,email,'+bad,invalid email address: missing @",
    ]
    # the stored name is the data as given; only the CSVs the product writes are neutralised
    assert members(deps)["ann@example.com"]["name"].startswith("=HYPERLINK")
