"""Import rules on fakes: column mapping, modes, dedupe, chunking and the error report."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.config import Settings
from lunamail.domain.audience import ImportChunk, ImportCompleted, ImportProgressed
from lunamail.domain.messages import Message
from lunamail.ports.blobs import BlobNotFound
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.ports.secrets import DerivedSecrets
from lunamail.services.audience import api, handlers
from lunamail.services.audience.errors import InvalidInput, NotFound

A = "acme"


class FakeBlobs:
    """Blobs in a dict, with no local path, so the import reads through ``open``."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def put(self, key: str, data: bytes, *, content_type: str = "") -> None:
        self.data[key] = bytes(data)

    def put_stream(self, key: str, stream: BinaryIO, *, content_type: str = "") -> int:
        self.data[key] = stream.read()
        return len(self.data[key])

    def get(self, key: str) -> bytes:
        if key not in self.data:
            raise BlobNotFound(key)
        return self.data[key]

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get(key))

    def exists(self, key: str) -> bool:
        return key in self.data

    def size(self, key: str) -> int:
        return len(self.get(key))

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in self.data if k.startswith(prefix)))

    def upload_url(self, key: str, *, expires: int = 3600, content_type: str | None = None) -> str:
        return f"memory://{key}"

    def local_path(self, key: str) -> str | None:
        return None


@pytest.fixture
def deps() -> Deps:
    return Deps(
        settings=Settings(data_dir=Path("unused"), import_chunk_rows=3),
        store=MemoryItemStore(),
        blobs=FakeBlobs(),
        clock=FakeClock(),
        secrets=DerivedSecrets(b"k" * 32),
    )


def run_import(
    deps: Deps, csv_bytes: bytes, *, mode: str = "subscribe", mapping: dict[str, str] | None = None,
    list_ref: str = "news",
) -> tuple[dict[str, Any], list[Message]]:  # fmt: skip
    """Start an import and run its chunk chain like the CLI does; return the final job."""
    key = f"up/{len(deps.blobs.data)}.csv"  # type: ignore[attr-defined]
    deps.blobs.put(key, csv_bytes)
    _job, cmd = api.start_import(deps, A, list_ref, key, mode=mode, mapping=mapping)
    emitted: list[Message] = []
    nxt: ImportChunk | None = cmd
    while nxt is not None:
        out = handlers.import_chunk(nxt, deps)
        emitted.extend(out)
        nxt = next((m for m in out if isinstance(m, ImportChunk)), None)
    return api.get_import(deps, A, cmd.import_id), emitted


def report_rows(deps: Deps, job: dict[str, Any]) -> list[str]:
    assert job["error_report"], "expected an error report"
    return deps.blobs.get(job["error_report"]).decode().splitlines()


def sub(deps: Deps, email: str) -> dict[str, Any]:
    return api.get_subscriber(deps, A, "news", email)


def test_detects_columns_by_header_names_and_merges_first_and_last(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    job, _ = run_import(deps, b"First Name,Last Name,E-mail Address,City\nAnn,Lee,ann@x.com,Paris\n")
    assert job["columns"] == {"First Name": "first_name", "Last Name": "last_name", "E-mail Address": "email", "City": "city"}
    s = sub(deps, "ann@x.com")
    assert (s["name"], s["fields"], s["status"]) == ("Ann Lee", {"city": "Paris"}, "subscribed")


def test_finds_the_email_column_by_its_values_when_no_header_says_so(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    job, _ = run_import(deps, b"who,contact\nAnn,ann@x.com\nBob,bob@x.com\nCarl,n/a\n")
    assert job["columns"]["contact"] == "email"
    assert job["imported"] == 2 and job["rejected"] == 1


def test_map_overrides_detection(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    job, _ = run_import(
        deps, b"E-Mail,Town,Secret\nann@x.com,Oslo,s1\n", mapping={"Town": "city", "secret": "-"}
    )
    assert job["columns"] == {"E-Mail": "email", "Town": "city", "Secret": "-"}
    assert sub(deps, "ann@x.com")["fields"] == {"city": "Oslo"}


def test_map_naming_an_unknown_column_is_a_clear_error(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    with pytest.raises(InvalidInput, match="no column 'Mail' in the file"):
        run_import(deps, b"email\nann@x.com\n", mapping={"Mail": "email"})


def test_dedupes_within_the_file_across_chunks_keeping_the_first(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    rows = b"email,name\na@x.com,First\nb@x.com,B\na@x.com,Second\nc@x.com,C\nd@x.com,D\na@x.com,Third\nb@x.com,Again\n"
    job, emitted = run_import(deps, rows)  # chunk size 3: duplicates in the same and in later chunks
    assert (job["imported"], job["duplicates"], job["skipped"]) == (4, 3, 3)
    assert sub(deps, "a@x.com")["name"] == "First"
    assert sum(isinstance(m, ImportProgressed) for m in emitted) == 3
    done = [m for m in emitted if isinstance(m, ImportCompleted)]
    assert len(done) == 1 and done[0].counts["imported"] == 4 and done[0].rows == 7
    assert api.count_by_status(deps, A, "news")["subscribed"] == 4


def test_subscribe_mode_updates_fields_but_never_resubscribes(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    api.subscribe(deps, A, "news", "a@x.com", name="Ann", fields={"city": "Rome"})
    api.subscribe(deps, A, "news", "u@x.com", name="Una")
    api.unsubscribe(deps, A, "news", "u@x.com")
    job, _ = run_import(deps, b"email,name,city,plan\na@x.com,,Paris,pro\nu@x.com,Una B,Oslo,\nn@x.com,New,Bern,\n")
    assert (job["imported"], job["updated"], job["skipped"]) == (1, 2, 0)
    assert sub(deps, "a@x.com")["fields"] == {"city": "Paris", "plan": "pro"}
    assert sub(deps, "a@x.com")["name"] == "Ann"  # an empty cell keeps what we had
    u = sub(deps, "u@x.com")
    assert (u["status"], u["name"], u["fields"]) == ("unsubscribed", "Una B", {"city": "Oslo"})
    assert api.count_by_status(deps, A, "news") == {
        "subscribed": 2, "unconfirmed": 0, "unsubscribed": 1, "bounced": 0, "complained": 0
    }  # fmt: skip


def test_reimporting_the_same_file_changes_nothing(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    data = b"email,name\na@x.com,A\nb@x.com,B\n"
    run_import(deps, data)
    job, _ = run_import(deps, data)
    assert (job["imported"], job["updated"], job["skipped"]) == (0, 0, 2)


def test_overwrite_replaces_fields_and_status(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    api.subscribe(deps, A, "news", "a@x.com", name="Ann", fields={"city": "Rome", "plan": "pro"})
    api.subscribe(deps, A, "news", "b@x.com")
    api.unsubscribe(deps, A, "news", "b@x.com")
    job, _ = run_import(deps, b"email,city,status\na@x.com,Paris,\nb@x.com,,subscribed\n", mode="overwrite")
    assert job["updated"] == 2
    a, b = sub(deps, "a@x.com"), sub(deps, "b@x.com")
    assert (a["fields"], a["name"], a["status"]) == ({"city": "Paris"}, "", "subscribed")
    assert b["status"] == "subscribed"
    assert api.count_by_status(deps, A, "news")["unsubscribed"] == 0


def test_skip_existing_leaves_existing_alone(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    api.subscribe(deps, A, "news", "a@x.com", name="Ann")
    job, _ = run_import(deps, b"email,name\na@x.com,Other\nb@x.com,Bob\n", mode="skip-existing")
    assert (job["imported"], job["skipped"]) == (1, 1)
    assert sub(deps, "a@x.com")["name"] == "Ann"


def test_blocklist_suppresses_and_marks_existing(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    api.subscribe(deps, A, "news", "a@x.com")
    api.suppress(deps, A, "c@x.com")
    job, _ = run_import(deps, b"email\na@x.com\nb@x.com\nc@x.com\n", mode="blocklist")
    assert (job["imported"], job["updated"], job["skipped"]) == (2, 1, 1)
    assert all(api.is_suppressed(deps, A, e) for e in ("a@x.com", "b@x.com", "c@x.com"))
    assert sub(deps, "a@x.com")["status"] == "unsubscribed"
    with pytest.raises(NotFound):
        sub(deps, "b@x.com")


def test_suppressed_addresses_are_not_imported(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    api.suppress(deps, A, "s@x.com", reason="complaint")
    job, _ = run_import(deps, b"email\ns@x.com\nok@x.com\n")
    assert (job["imported"], job["suppressed"], job["skipped"]) == (1, 1, 1)


def test_role_addresses_are_accepted_flagged_and_counted(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    job, _ = run_import(deps, b"email\ninfo@x.com\nann@x.com\nNoReply@x.com\n")
    assert (job["imported"], job["role"]) == (3, 2)
    assert sub(deps, "info@x.com")["role"] is True
    assert sub(deps, "ann@x.com")["role"] is False


def test_typed_fields_are_coerced_and_bad_values_rejected_with_column(deps: Deps) -> None:
    api.create_list(deps, A, "news", fields=[{"name": "score", "type": "number"}, {"name": "vip", "type": "bool"},
                                          {"name": "signed_up", "type": "date"}])  # fmt: skip
    data = (Path(__file__).parents[1] / "data" / "csv" / "typed_fields.csv").read_bytes()
    job, _ = run_import(deps, data, mapping={"Contact": "name"})
    assert (job["imported"], job["rejected"]) == (1, 3)
    assert sub(deps, "ann@example.com")["fields"] == {"town": "Paris", "signed_up": "2024-01-05", "score": 7, "vip": True}
    assert report_rows(deps, job) == [
        "line,column,value,reason",
        "3,Signed up,05/01/2024,signed_up: not a date (YYYY-MM-DD)",
        "4,Score,high,score: not a number",
        "5,VIP,maybe,"  # the reason contains commas, so it is quoted
        '"vip: not a yes/no value (true/false, yes/no, 1/0)"',
    ]


def test_a_redelivered_chunk_is_a_no_op_that_re_emits_its_successor(deps: Deps) -> None:
    api.create_list(deps, A, "news")
    deps.blobs.put("f.csv", b"email\na@x.com\nb@x.com\nc@x.com\nd@x.com\n")
    _job, first = api.start_import(deps, A, "news", "f.csv")
    out1 = handlers.import_chunk(first, deps)
    again = handlers.import_chunk(first, deps)
    assert again == out1  # same successor, counted once
    assert api.get_import(deps, A, first.import_id)["imported"] == 3
    nxt = next(m for m in out1 if isinstance(m, ImportChunk))
    handlers.import_chunk(nxt, deps)
    assert handlers.import_chunk(first, deps) == []  # a stale copy of an older chunk
    assert api.get_import(deps, A, first.import_id)["imported"] == 4
