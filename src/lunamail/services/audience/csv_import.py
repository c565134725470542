"""Streaming CSV import: inspect a file once, then import it chunk by chunk.

The file is never held in memory.  ``plan_import`` reads a 64 KB prefix to
decide the encoding, delimiter, header and column mapping, which are stored on
the import job.  ``run_chunk`` seeks to a byte offset and imports at most N
rows, in sub-batches with one ``get_many`` (existing subscribers and
suppressions) and one or two ``put_many`` each; the per-row work is a handful
of plain tuple and dict operations.  Rows stay tuples on the hot path.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gc
import io
import itertools
import math
import operator
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any, overload

from lunamail.domain import audience as dom
from lunamail.domain.addresses import mailbox_key
from lunamail.lib import csvsafe, emails
from lunamail.ports.blobs import Blobs
from lunamail.ports.itemstore import IF_ABSENT, Item, ItemStore

from . import consent
from .errors import InvalidInput

SAMPLE_BYTES = 64 * 1024
MAX_FIELD = 64 * 1024  # characters in one field
MAX_LINE = 1024 * 1024  # bytes in one physical line; longer lines are skipped unread
_BLOCK = 256 * 1024  # bytes read and decoded at once (below MAX_LINE)
SUB_BATCH = 50_000  # rows per get_many / put_many round trip
REPORT_VALUE_CHARS = 200
DETECT_ROWS = 50
MAX_COLUMNS = 1_000  # columns of a file (the layout is stored on the import job)
MAX_ROW_LINES = 100  # physical lines one row may span (quoted line breaks); more: an open quote

_EMAIL_NAMES = {"email", "e mail", "mail", "email address", "e mail address", "emailaddress", "mail address"}
_NAME_NAMES = {"name", "full name", "fullname", "display name", "contact name"}
_FIRST_NAMES = {"first name", "firstname", "first", "given name", "forename"}
_LAST_NAMES = {"last name", "lastname", "last", "surname", "family name"}
_STATUS_NAMES = {"status", "subscription status"}
_TARGETS_SPECIAL = {"email", "name", "first_name", "last_name", "status", "-"}
_BOOL = {"true": True, "yes": True, "y": True, "1": True, "false": False, "no": False, "n": False, "0": False}


def _norm_header(h: str) -> str:
    return re.sub(r"[\s_\-]+", " ", h.strip().lower())


def _slug(h: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", h.strip().lower()).strip("_") or "field"


# ---------------------------------------------------------------- reading


class _Source:
    """Decoded physical lines for ``csv.reader``, read and decoded a block at a time.

    The reader pulls lines straight from a ``StringIO`` per block (no Python call
    per line); ``reader.line_num`` numbers them.  Only a chunk's end needs a byte
    offset, found in the current block's bytes by ``offset_after``.  A block that
    does not decode, and a line over ``MAX_LINE`` bytes (skipped unread, seen as a
    blank line), take the slow path, which records why in ``flags``: line number
    (counted from the first line read) -> reason.  Lines end at ``\\n`` only, which
    in UTF-8 and cp1252 is never part of another character.
    """

    __slots__ = ("_data", "_line", "_nbytes", "_nlines", "_pos", "encoding", "f", "flags")

    def __init__(self, f: IO[bytes], encoding: str, pos: int) -> None:
        self.f = f
        self.encoding = encoding
        self.flags: dict[int, str] = {}
        self._pos = pos  # byte offset of the current block
        self._line = 0  # lines before the current block
        self._data: bytes | None = None  # the current block (None: a skipped long line)
        self._nbytes = 0
        self._nlines = 0

    def lines(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._blocks())

    def _enter(self, data: bytes | None, nbytes: int, nlines: int) -> None:
        self._pos += self._nbytes
        self._line += self._nlines
        self._data, self._nbytes, self._nlines = data, nbytes, nlines

    def _blocks(self) -> Iterator[Iterable[str]]:
        buf = b""
        while True:
            data = self.f.read(_BLOCK)
            buf = buf + data if buf else data
            if not buf:
                return
            # Lines after the first start in ``data``, shorter than MAX_LINE.
            first = buf.find(b"\n") if len(buf) >= MAX_LINE else 0
            if first < 0 or first >= MAX_LINE:
                nbytes, buf = self._skip_line(buf)
                self._enter(None, nbytes, 1)
                self.flags[self._line + 1] = f"row too large (a line over {MAX_LINE} bytes)"
                yield ("\n",)
                continue
            cut = buf.rfind(b"\n") + 1 if data else len(buf)
            if not cut:
                continue  # one long line so far: read on
            block, buf = buf[:cut], buf[cut:]
            nlines = block.count(b"\n") + (block[-1] != 10)
            self._enter(block, cut, nlines)
            try:
                text = block.decode(self.encoding)
            except UnicodeDecodeError:
                yield self._careful(block)
            else:
                yield io.StringIO(text, newline="\n")

    def _skip_line(self, buf: bytes) -> tuple[int, bytes]:
        """(bytes in the line that starts ``buf``, what follows it), reading on as needed."""
        n = 0
        while True:
            end = buf.find(b"\n")
            if end >= 0:
                return n + end + 1, buf[end + 1 :]
            n += len(buf)
            buf = self.f.read(_BLOCK)
            if not buf:
                return n, b""

    def _careful(self, block: bytes) -> list[str]:
        """The lines of a block that does not decode: each bad line replaced and flagged."""
        enc = self.encoding
        out: list[str] = []
        start = 0
        while start < len(block):
            end = block.find(b"\n", start) + 1 or len(block)
            raw = block[start:end]
            try:
                out.append(raw.decode(enc))
            except UnicodeDecodeError as e:
                name = "UTF-8" if enc == "utf-8" else enc
                self.flags[self._line + len(out) + 1] = (
                    f"not valid {name} text (byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line)"
                )
                out.append(raw.decode(enc, "replace"))
            start = end
        return out

    def flag(self, first: int, last: int) -> str:
        """Why lines ``first``..``last`` (one row) cannot be used ("" if they can); forgets
        the flags up to ``last``."""
        why = ""
        for n in sorted(self.flags):
            if n > last:
                break
            reason = self.flags.pop(n)
            if n >= first and not why:
                why = reason
        return why

    def offset_after(self, lines: int) -> int:
        """The byte offset just after the first ``lines`` lines read."""
        within = lines - self._line
        if within <= 0:
            return self._pos
        if within >= self._nlines or self._data is None:
            return self._pos + self._nbytes
        data, at = self._data, 0
        for _ in range(within):
            at = data.index(b"\n", at) + 1
        return self._pos + at


def _offset_after_lines(blobs: Blobs, key: str, offset: int, lines: int) -> int:
    """The byte offset just after ``lines`` lines from ``offset`` (to read on after a bad row)."""
    with _open_at(blobs, key, offset) as f:
        at = offset
        while lines > 0:
            data = f.read(_BLOCK)
            if not data:
                return at
            start = 0
            while lines > 0:
                end = data.find(b"\n", start)
                if end < 0:
                    break
                lines -= 1
                start = end + 1
            at += start if lines == 0 else len(data)
        return at


def _open_at(blobs: Blobs, key: str, offset: int) -> IO[bytes]:
    """The object as a buffered binary stream positioned at ``offset``."""
    path = blobs.local_path(key)
    f: IO[bytes]
    if path is not None:
        f = open(path, "rb", buffering=1 << 20)  # noqa: SIM115 - caller closes
    else:
        stream = blobs.open(key)
        f = io.BufferedReader(stream, 1 << 20) if isinstance(stream, io.RawIOBase) else stream
    if offset:
        if f.seekable():
            f.seek(offset)
        else:
            left = offset
            while left > 0:
                got = f.read(min(left, 1 << 20))
                if not got:
                    break
                left -= len(got)
    return f


class _FieldLimit:
    """Lower ``csv.field_size_limit`` for the duration of a read (it is process-global)."""

    def __enter__(self) -> None:
        self._old = csv.field_size_limit(MAX_FIELD)

    def __exit__(self, *exc: object) -> None:
        csv.field_size_limit(self._old)


class _FewerCollections:
    """Raise the garbage collector's first threshold for the duration of a chunk.

    A chunk allocates millions of short-lived containers (rows, field dicts, items),
    nearly all freed by reference counting, and holds a sub-batch of rows: at the
    default threshold the collector runs every 700 allocations and now and then walks
    the whole heap for nothing.  Process-global, so nested or concurrent chunks share
    one raise and the last one out restores the previous thresholds.
    """

    GEN0 = 100_000
    _lock = threading.Lock()
    _depth = 0
    _saved: tuple[int, int, int] = (700, 10, 10)

    def __enter__(self) -> None:
        cls = type(self)
        with cls._lock:
            if cls._depth == 0:
                g0, g1, g2 = gc.get_threshold()
                cls._saved = (g0, g1, g2)
                if g0:  # 0: the collector is off; leave it so
                    gc.set_threshold(max(g0, cls.GEN0), g1, g2)
            cls._depth += 1

    def __exit__(self, *exc: object) -> None:
        cls = type(self)
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0:
                gc.set_threshold(*cls._saved)


def _csv_error_reason(e: csv.Error) -> str:
    if "field larger than field limit" in str(e):
        return f"field too large (over {MAX_FIELD} characters)"
    return f"malformed CSV ({e})"


# ---------------------------------------------------------------- planning


def _decide_encoding(f: IO[bytes], sample: bytes) -> tuple[str, int]:
    """(encoding, bytes to skip), on evidence from the whole file: a BOM wins; else UTF-8
    unless more lines fail to decode as UTF-8 than decode with non-ASCII characters in
    them (then cp1252, which decodes anything).  So one stray byte cannot turn every
    accented name of a UTF-8 file into mojibake: its line is rejected as not valid UTF-8
    (counted in the report) and the rest imports as written."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    bad = good = 0
    rest = b""
    while True:
        data = f.read(_BLOCK)
        block = rest + data
        if not block:
            break
        cut = block.rfind(b"\n") + 1 if data else len(block)
        if not cut:
            rest = block
            continue
        block, rest = block[:cut], block[cut:]
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            for line in block.split(b"\n"):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    bad += 1
                else:
                    good += not line.isascii()
        else:
            if not block.isascii():
                good += sum(not line.isascii() for line in block.split(b"\n"))
    return ("utf-8" if bad <= good else "cp1252"), 0


def _sniff_delimiter(first_line: str) -> str:
    """The candidate that splits the header most often outside quotes (',' on a tie)."""
    counts = dict.fromkeys(",;\t", 0)
    quoted = False
    for ch in first_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda c: (counts[c], c == ","))
    return best if counts[best] else ","


def plan_import(
    blobs: Blobs, key: str, field_defs: Sequence[Mapping[str, str]], mapping: Mapping[str, str]
) -> dict[str, Any]:
    """Decide how to read the file; raise InvalidInput for problems with the whole file."""
    if not blobs.exists(key):
        raise InvalidInput(f"no uploaded file {key!r}", {"file": "missing"})
    with _open_at(blobs, key, 0) as f:
        sample = f.read(SAMPLE_BYTES)
    if not sample.strip():
        raise InvalidInput("the file is empty", {"file": "empty"})
    if b"\x00" in sample:
        raise InvalidInput(
            "the file is binary (or UTF-16), not CSV text; save it as CSV (UTF-8)", {"file": "binary"}
        )
    with _open_at(blobs, key, 0) as f:
        encoding, skip = _decide_encoding(f, sample)
    text = sample[skip:].decode(encoding, "replace")
    controls = sum(1 for c in text[:4096] if c < " " and c not in "\t\r\n")
    if controls * 20 > min(len(text), 4096):
        raise InvalidInput("the file is binary, not CSV text", {"file": "binary"})
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delimiter = _sniff_delimiter(first)

    with _open_at(blobs, key, skip) as f, _FieldLimit():
        src = _Source(f, encoding, skip)
        reader = csv.reader(src.lines(), delimiter=delimiter)
        header: list[str] | None = None
        header_line = 0
        data_offset = skip
        sample_rows: list[list[str]] = []
        try:
            for row in reader:
                if header is None and src.flags:
                    why = src.flag(1, reader.line_num)
                    if why:
                        raise InvalidInput(f"cannot read the header row: {why}", {"file": "header"})
                if not any(c.strip() for c in row):
                    continue
                if header is None:
                    header, header_line = row, reader.line_num
                    data_offset = src.offset_after(header_line)
                    continue
                sample_rows.append(row)
                if len(sample_rows) >= DETECT_ROWS:
                    break
        except csv.Error as e:
            if header is None:
                raise InvalidInput(f"cannot read the header row: {_csv_error_reason(e)}", {"file": "header"}) from e
    if header is None:
        raise InvalidInput("the file is empty", {"file": "empty"})
    if len(header) > MAX_COLUMNS:
        raise InvalidInput(f"the header has {len(header):,} columns; an import takes at most {MAX_COLUMNS:,}",
                           {"file": "header"})

    has_header = not any(emails.is_valid(c) for c in header)
    if not has_header:
        sample_rows.insert(0, header)
        names = [f"column {i + 1}" for i in range(len(header))]
        data_offset, data_line = skip, 1
    else:
        names = [h.strip() for h in header]
        data_line = header_line + 1
    layout = _map_columns(names, has_header, sample_rows, field_defs, mapping)
    layout.update(
        encoding=encoding,
        delimiter=delimiter,
        has_header=has_header,
        data_offset=data_offset,
        data_line=data_line,
    )
    return layout


def _map_columns(
    names: list[str],
    has_header: bool,
    sample_rows: list[list[str]],
    field_defs: Sequence[Mapping[str, str]],
    mapping: Mapping[str, str],
) -> dict[str, Any]:
    """Assign each column a target: email, name, first/last name, status or a custom field."""
    lookup = {n.casefold(): i for i, n in enumerate(names)}
    targets: dict[int, str] = {}
    for column, target in mapping.items():
        idx = lookup.get(column.strip().casefold())
        if idx is None:
            raise InvalidInput(
                f"--map: no column {column!r} in the file (columns: {', '.join(names)})",
                {"mapping": column},
            )
        targets[idx] = target.strip()
    for i, n in enumerate(names):
        if i in targets or not has_header:
            continue
        h = _norm_header(n)
        if h in _EMAIL_NAMES and "email" not in targets.values():
            targets[i] = "email"
        elif h in _NAME_NAMES and "name" not in targets.values():
            targets[i] = "name"
        elif h in _FIRST_NAMES and "first_name" not in targets.values():
            targets[i] = "first_name"
        elif h in _LAST_NAMES and "last_name" not in targets.values():
            targets[i] = "last_name"
        elif h in _STATUS_NAMES and "status" not in targets.values():
            targets[i] = "status"
    if "email" not in targets.values():
        idx = _email_column_by_values(names, sample_rows, set(targets))
        if idx is None:
            raise InvalidInput(
                f"no email column found (columns: {', '.join(names)}); "
                "name one with --map COLUMN=email",
                {"file": "no email column"},
            )
        targets[idx] = "email"
    types = {d["name"]: d.get("type", "text") for d in field_defs}
    fields: list[list[Any]] = []
    for i, n in enumerate(names):
        t = targets.get(i)
        if t is None:
            t = _slug(n) if has_header else f"column_{i + 1}"
            targets[i] = t
        if t not in _TARGETS_SPECIAL:
            fields.append([i, t, types.get(t, "text")])

    def col(target: str) -> int | None:
        return next((i for i, t in targets.items() if t == target), None)

    return {
        "columns": names,
        "ncols": len(names),
        "email": col("email"),
        "name": col("name"),
        "first": col("first_name"),
        "last": col("last_name"),
        "status": col("status"),
        "fields": fields,
        "columns_view": {names[i]: t for i, t in sorted(targets.items())},
    }


def _email_column_by_values(
    names: list[str], rows: list[list[str]], taken: set[int]
) -> int | None:
    """The column where most sampled values are valid addresses (at least half)."""
    best, best_hits = None, 0
    for i in range(len(names)):
        if i in taken:
            continue
        hits = sum(1 for r in rows if i < len(r) and emails.is_valid(r[i]))
        if hits > best_hits:
            best, best_hits = i, hits
    return best if rows and best_hits * 2 >= len(rows) else None


# ---------------------------------------------------------------- importing


@dataclass
class ChunkResult:
    offset: int
    line: int
    eof: bool
    counts: dict[str, int]
    list_deltas: dict[str, int]
    rejects: list[tuple[int, str, str, str]] = field(default_factory=list)


def coerce_field(value: str, typ: str) -> tuple[Any, str]:
    """(value, "") or (None, reason) for a typed custom field."""
    v = value.strip()
    if typ == "number":
        try:
            return int(v), ""
        except ValueError:
            try:
                f = float(v)
            except ValueError:
                return None, "not a number"
            return (f, "") if math.isfinite(f) else (None, "not a finite number")
    if typ == "bool":
        b = _BOOL.get(v.lower())
        return (b, "") if b is not None else (None, "not a yes/no value (true/false, yes/no, 1/0)")
    if typ == "date":
        try:
            return date.fromisoformat(v).isoformat(), ""
        except ValueError:
            return None, "not a date (YYYY-MM-DD)"
    return value, ""


def run_chunk(
    store: ItemStore,
    blobs: Blobs,
    job: Item,
    account: str,
    offset: int,
    line: int,
    max_rows: int,
    now: float,
) -> ChunkResult:
    """Import up to ``max_rows`` rows from byte ``offset``; the caller records the result."""
    lay = job["layout"]
    import_id: str = job["id"]
    list_id: str = job["list"]
    mode: str = job["mode"]
    names: list[str] = lay["columns"]
    ncols: int = lay["ncols"]
    ei: int = lay["email"]
    ni: int | None = lay["name"]
    fi: int | None = lay["first"]
    li: int | None = lay["last"]
    si: int | None = lay["status"]
    field_cols: list[tuple[int, str, str]] = [(x[0], x[1], x[2]) for x in lay["fields"]]
    typed = any(t != "text" for _, _, t in field_cols)
    text_cols = [(idx, fname) for idx, fname, _ in field_cols]
    email_col = names[ei]
    check = emails.check
    key_of = mailbox_key
    is_role = emails.is_role
    statuses = frozenset(dom.STATUSES)

    counts = dict.fromkeys(
        ("rows", "imported", "updated", "skipped", "rejected", "duplicates", "suppressed", "opted_out", "role"), 0
    )
    deltas: dict[str, int] = {}
    rejects: list[tuple[int, str, str, str]] = []
    seen: set[str] = set()
    batch: list[_Row] = []
    append = batch.append
    writer = _Writer(
        store, account, list_id, import_id, mode, now, counts, deltas, [f for _, f, _ in field_cols],
        names[ei],
    )
    n_rows = n_dups = n_roles = 0  # hot counters as locals, folded into ``counts`` at the end

    def reject(at: int, column: str, value: str, reason: str) -> None:
        if len(value) > REPORT_VALUE_CHARS:
            value = value[:REPORT_VALUE_CHARS] + "…"
        rejects.append((at, column, value, reason))

    eof = False
    blob: str = job["blob"]
    with _FewerCollections(), _FieldLimit(), contextlib.ExitStack() as files:
        segment = offset  # byte offset where the current reader started (line ``base + 1``)
        f = files.enter_context(_open_at(blobs, blob, segment))
        src = _Source(f, lay["encoding"], segment)
        reader = csv.reader(src.lines(), delimiter=lay["delimiter"])
        flags = src.flags
        base = line - 1  # lines of the file before the first one read here
        last = 0  # reader.line_num after the previous row: the row's first line is last + 1
        left = max_rows
        while left > 0:
            restart: int | None = None  # lines of this segment to skip before reading on
            try:
                for row in itertools.islice(reader, left):
                    left -= 1
                    prev, last = last, reader.line_num
                    span = last - prev
                    if span > 1 and (span > MAX_ROW_LINES or len(row) != ncols):
                        # An unterminated quote swallows the lines after it: reject the line
                        # it is on and read on from the next one.
                        n_rows += 1
                        reject(base + prev + 1, "", "", f"unterminated quote (the row would run over "
                               f"{span} lines); skipped, the import goes on at the next line")
                        restart = prev + 1
                        break
                    if flags:
                        why = src.flag(prev + 1, last)
                        if why:
                            n_rows += 1
                            reject(base + prev + 1, "", "", why)
                            continue
                    n = len(row)
                    if n != ncols:
                        if n == 0 or (n == 1 and not row[0].strip()):
                            continue  # blank line
                        n_rows += 1
                        reject(base + prev + 1, "", "", f"row has {n} fields, the header has {ncols}")
                        continue
                    n_rows += 1
                    raw = row[ei]
                    email, why = check(raw)
                    if email is None:
                        reject(base + prev + 1, email_col, raw, f"invalid email address: {why}")
                        continue
                    key = key_of(email)  # one subscriber per mailbox, whatever the case
                    if key in seen:
                        n_dups += 1
                        continue
                    fields: dict[str, Any] = {}
                    if typed:
                        bad = False
                        for idx, fname, ftype in field_cols:
                            v = row[idx]
                            if v:
                                if ftype != "text":
                                    v, why = coerce_field(v, ftype)
                                    if why:
                                        reject(base + prev + 1, names[idx], row[idx], f"{fname}: {why}")
                                        bad = True
                                        break
                                fields[fname] = v
                        if bad:
                            continue
                    else:
                        for idx, fname in text_cols:
                            v = row[idx]
                            if v:
                                fields[fname] = v
                    status: str | None = None
                    if si is not None:
                        s = row[si].strip().lower()
                        if s:
                            if s not in statuses:
                                reject(
                                    base + prev + 1, names[si], row[si],
                                    f"unknown status (one of {', '.join(dom.STATUSES)})",
                                )  # fmt: skip
                                continue
                            status = s
                    if ni is not None:
                        name = row[ni].strip()
                    elif fi is not None and li is not None:
                        name = f"{row[fi].strip()} {row[li].strip()}".strip()
                    elif fi is not None:
                        name = row[fi].strip()
                    elif li is not None:
                        name = row[li].strip()
                    else:
                        name = ""
                    seen.add(key)
                    role = is_role(email)
                    if role:
                        n_roles += 1
                    append((base + prev + 1, key, name, fields, status, role, email))
                    if len(batch) >= SUB_BATCH:
                        writer.flush(batch)
                        batch = []
                        append = batch.append
            except csv.Error as e:
                left -= 1
                n_rows += 1
                reject(base + last + 1, "", "", _csv_error_reason(e) + "; skipped, the import goes on "
                       "at the next line")
                restart = last + 1
            if restart is not None:
                segment = _offset_after_lines(blobs, blob, segment, restart)
                f = files.enter_context(_open_at(blobs, blob, segment))
                src = _Source(f, lay["encoding"], segment)
                reader = csv.reader(src.lines(), delimiter=lay["delimiter"])
                flags = src.flags
                base += restart
                last = 0
                continue
            eof = left > 0  # the reader ran dry before the budget did
            break
        end = src.offset_after(reader.line_num)
        if not eof and end >= job["bytes_total"]:
            eof = True
        if batch:
            writer.flush(batch)
        # Free the rows before the collector's thresholds drop back: left alive, they
        # would be walked at the next allocation for nothing.
        batch.clear()
    counts["rows"] += n_rows
    counts["duplicates"] += n_dups
    counts["skipped"] += n_dups
    counts["role"] += n_roles
    counts["rejected"] = len(rejects)
    if writer.listed:  # opted-out rows are listed in the report too (not counted as rejected)
        rejects = sorted(rejects + writer.listed)
    return ChunkResult(end, base + reader.line_num + 1, eof, counts, deltas, rejects)


# (line, mailbox key, name, fields, status from the file or None, role address, the address
# as written in the file)
_Row = tuple[int, str, str, dict[str, Any], str | None, bool, str]
_by_key = operator.itemgetter(1)


class _NewItems(Sequence[Item]):
    """The new-subscriber items of a sub-batch, built as the store reads them: the store
    encodes each one and drops it, so a 50,000-row transaction never holds 50,000 dicts.

    ``plain_items`` tells a store that may skip some checks that every item is built
    here from strings, finite numbers, booleans and a dict of those under non-empty
    names (no None, NaN or infinity anywhere): the fields come from ``coerce_field``
    and the names from the layout, which ``_Writer`` checked."""

    __slots__ = ("_rows", "_writer", "plain_items")

    def __init__(self, rows: list[_Row], writer: _Writer) -> None:
        self._rows = rows
        self._writer = writer
        self.plain_items = writer.plain

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Item]: ...
    def __getitem__(self, index: int | slice) -> Item | Sequence[Item]:
        if isinstance(index, slice):
            return _NewItems(self._rows[index], self._writer)
        return self._writer._new_item(self._rows[index])

    def __iter__(self) -> Iterator[Item]:
        """Same items as ``_Writer._new_item``, with the constant parts bound once."""
        w = self._writer
        pk, list_id, source, now, imp = w.pk, w.list_id, w.source, w.now, w.import_id
        for _at, key, name, fields, status, role, email in self._rows:
            item: Item = {
                "pk": pk, "sk": "S#" + key, "email": email, "list": list_id,
                "name": name, "fields": fields, "status": status or "subscribed",
                "source": source, "created_at": now, "updated_at": now, "imp": imp,
            }  # fmt: skip
            if role:
                item["role"] = True
            yield item


class _Writer:
    """Applies one import mode to a sub-batch with one read and one or two writes.

    Into a list that does not have the rows yet (the common case: a new list) the
    writer is optimistic: it inserts every row with one conditional ``put_many`` and
    reads nothing but a few sample keys.  A sample that finds existing subscribers, or
    a sub-batch whose insert meets one, switches it to reading first, so re-imports do
    not pay for failed inserts twice.
    """

    PROBES = 16  # sample keys read before an optimistic insert

    def __init__(
        self,
        store: ItemStore,
        account: str,
        list_id: str,
        import_id: str,
        mode: str,
        now: float,
        counts: dict[str, int],
        deltas: dict[str, int],
        field_names: Iterable[str] = (),
        email_col: str = "email",
    ) -> None:
        self.store = store
        self.pk = dom.subscribers_pk(account, list_id)
        self.sup_pk = dom.suppression_pk(account)
        self.opt_pk = dom.optout_pk(account)
        self.account = account
        self.email_col = email_col
        #: rows left out for a reason the error report lists (opted out), as rejects are
        self.listed: list[tuple[int, str, str, str]] = []
        self.list_id = list_id
        self.import_id = import_id
        self.mode = mode
        self.now = now
        self.source = f"import:{import_id}"
        self.counts = counts
        self.deltas = deltas
        self.optimistic = mode != dom.ImportMode.BLOCKLIST
        # New-subscriber items hold only values built here (see ``_NewItems``), provided
        # the field names are usable attribute names and the clock reads a finite time.
        self.plain = math.isfinite(now) and all(
            isinstance(f, str) and f and f[0] != "\x00" for f in field_names
        )

    def _suppressed(self, batch: list[_Row]) -> list[Item | None] | None:
        """Suppression items per row, or None when the account has no suppressions at all
        (one cheap query instead of a lookup per row)."""
        if not self.store.query(self.sup_pk, limit=1).items:
            return None
        return self.store.get_many([(self.sup_pk, "SUP#" + b[1]) for b in batch])

    def _without_opted_out(self, batch: list[_Row]) -> list[_Row]:
        """The rows whose mailbox did not unsubscribe from all lists; the others are counted
        (``opted_out``) and listed in the error report.  One cheap query when the account
        has no opt-outs at all."""
        if not self.store.query(self.opt_pk, limit=1).items:
            return batch
        found = self.store.get_many([(self.opt_pk, "OPT#" + b[1]) for b in batch])
        keep = [b for b, o in zip(batch, found, strict=True) if o is None]
        if len(keep) < len(batch):
            n = len(batch) - len(keep)
            self.counts["opted_out"] += n
            self.counts["skipped"] += n
            self.listed.extend(
                (b[0], self.email_col, b[6], "opted out: unsubscribed from all lists of this account "
                 f"({o.get('door', '')}); not imported")
                for b, o in zip(batch, found, strict=True) if o is not None
            )  # fmt: skip
        return keep

    def _new_item(self, row: _Row) -> Item:
        _at, key, name, fields, status, role, email = row
        item: Item = {
            "pk": self.pk, "sk": "S#" + key, "email": email, "list": self.list_id,
            "name": name, "fields": fields, "status": status or "subscribed",
            "source": self.source, "created_at": self.now, "updated_at": self.now,
            "imp": self.import_id,
        }  # fmt: skip
        if role:
            item["role"] = True
        return item

    def _seems_new(self, rows: list[_Row]) -> bool:
        """True when none of a few evenly spread rows is on the list already."""
        step = max(1, len(rows) // self.PROBES)
        probe = [(self.pk, "S#" + rows[i][1]) for i in range(0, len(rows), step)]
        return not any(self.store.get_many(probe))

    def flush(self, batch: list[_Row]) -> None:
        batch.sort(key=_by_key)  # neighbouring keys: fewer B-tree pages touched per write
        if self.mode == dom.ImportMode.BLOCKLIST:
            olds = self.store.get_many([(self.pk, "S#" + b[1]) for b in batch])
            self._blocklist(batch, olds, self._suppressed(batch))
            return
        batch = self._without_opted_out(batch)
        if not batch:
            return
        sups = self._suppressed(batch)
        if self.optimistic:
            rows = batch if sups is None else [b for b, s in zip(batch, sups, strict=True) if s is None]
            if rows and not self._seems_new(rows):
                self.optimistic = False
        if self.optimistic:
            self.counts["suppressed"] += len(batch) - len(rows)
            self.counts["skipped"] += len(batch) - len(rows)
            written = self.store.put_many(_NewItems(rows, self), condition=IF_ABSENT)
            if all(written):
                self._count_new(rows)
                return
            self._count_new([row for row, ok in zip(rows, written, strict=True) if ok])
            rest = [row for row, ok in zip(rows, written, strict=True) if not ok]
            self.optimistic = False
            olds = self.store.get_many([(self.pk, "S#" + b[1]) for b in rest])
            self._apply(rest, olds, None)
            return
        olds = self.store.get_many([(self.pk, "S#" + b[1]) for b in batch])
        self._apply(batch, olds, sups)

    def _count_new(self, rows: Iterable[_Row]) -> None:
        deltas = self.deltas
        n = 0
        for row in rows:
            status = row[4] or "subscribed"
            deltas[status] = deltas.get(status, 0) + 1
            n += 1
        self.counts["imported"] += n

    def _apply(self, batch: list[_Row], olds: list[Item | None], sups: list[Item | None] | None) -> None:
        counts, mode, imp, now = self.counts, self.mode, self.import_id, self.now
        opted_out = dom.OPTED_OUT
        new: list[_Row] = []
        changed: list[tuple[Item, str]] = []
        for i, row in enumerate(batch):
            old = olds[i]
            suppressed = sups is not None and sups[i] is not None
            if old is None:
                if suppressed:
                    counts["suppressed"] += 1
                    counts["skipped"] += 1
                else:
                    new.append(row)
                continue
            if old.get("imp") == imp:  # an earlier chunk of this file had it: keep the first
                counts["duplicates"] += 1
                counts["skipped"] += 1
                continue
            if mode == dom.ImportMode.SKIP_EXISTING:
                counts["skipped"] += 1
                continue
            _at, _key, name, fields, status, _role, _email = row
            old_status = old["status"]
            old_fields = old.get("fields", {})
            if mode == dom.ImportMode.OVERWRITE:
                new_status = old_status if suppressed else (status or "subscribed")
                new_fields, new_name = fields, name
            else:  # subscribe: merge, and only ever move towards "out"
                new_status = status if status in opted_out and old_status not in opted_out else old_status
                new_fields = {**old_fields, **fields} if fields else old_fields
                new_name = name or old.get("name", "")
            if new_status == old_status and new_fields == old_fields and new_name == old.get("name", ""):
                counts["skipped"] += 1
                continue
            upd = {**old, "status": new_status, "fields": new_fields, "name": new_name, "updated_at": now, "imp": imp}
            changed.append((upd, old_status))
        if new:
            written = self.store.put_many(_NewItems(new, self), condition=IF_ABSENT)
            self._count_new([row for row, ok in zip(new, written, strict=True) if ok])
            counts["skipped"] += written.count(False)  # someone else added it meanwhile: theirs stands
        if changed:
            self.store.put_many([c[0] for c in changed])
            history: list[Item] = []
            for upd, old_status in changed:
                counts["updated"] += 1
                if upd["status"] != old_status:
                    self.deltas[old_status] = self.deltas.get(old_status, 0) - 1
                    self.deltas[upd["status"]] = self.deltas.get(upd["status"], 0) + 1
                    history.append(self._history(upd["email"], upd["status"]))
            if history:
                self.store.put_many(history)

    def _blocklist(
        self, batch: list[_Row], olds: list[Item | None], sups: list[Item | None] | None
    ) -> None:
        """Suppress every address; mark subscribers of this list as unsubscribed."""
        new_sups: list[Item] = []
        marked: list[Item] = []
        for i, row in enumerate(batch):
            key, email = row[1], row[6]
            if sups is None or sups[i] is None:
                new_sups.append({
                    "pk": self.sup_pk, "sk": "SUP#" + key, "email": email,
                    "reason": "blocklist import", "source": self.source, "created_at": self.now,
                })  # fmt: skip
            else:
                self.counts["skipped"] += 1
            old = olds[i]
            if old is not None and old["status"] not in dom.OPTED_OUT:
                marked.append({**old, "status": "unsubscribed", "updated_at": self.now, "imp": self.import_id})
                self.deltas[old["status"]] = self.deltas.get(old["status"], 0) - 1
                self.deltas["unsubscribed"] = self.deltas.get("unsubscribed", 0) + 1
        history: list[Item] = []
        if new_sups:
            ok = self.store.put_many(new_sups, condition=IF_ABSENT)
            self.counts["imported"] += sum(ok)
            self.counts["skipped"] += len(ok) - sum(ok)
            history += [self._history(i["email"], "suppressed", "blocklist import")
                        for i, done in zip(new_sups, ok, strict=True) if done]  # fmt: skip
        if marked:
            self.store.put_many(marked)
            self.counts["updated"] += len(marked)
            history += [self._history(i["email"], "unsubscribed", "blocklist import") for i in marked]
        if history:
            self.store.put_many(history)

    def _history(self, email: str, event: str, note: str = "") -> Item:
        """A consent record of a status this import changed (new rows need none: the
        subscriber item says which import added it)."""
        detail = f"{self.import_id} {note}".strip()
        list_id = "" if event == "suppressed" else self.list_id
        return consent.record(self.account, email, event, self.now, door="import", list_id=list_id, detail=detail)


# ---------------------------------------------------------------- error report


def error_part_key(account: str, import_id: str, seq: int) -> str:
    return f"imports/{account}/{import_id}/errors-part-{seq:06d}.csv"


def error_report_key(account: str, import_id: str) -> str:
    return f"imports/{account}/{import_id}/errors.csv"


REPORT_HEADER = b"line,column,value,reason\r\n"


def encode_rejects(rejects: Sequence[tuple[int, str, str, str]]) -> bytes:
    """The error report's rows as CSV; values that a spreadsheet would run are neutralised."""
    buf = io.StringIO()
    csv.writer(buf).writerows(csvsafe.row(r) for r in rejects)
    return buf.getvalue().encode("utf-8")


class _Concat(io.RawIOBase):
    """A readable stream over a header and several blobs read one after another."""

    def __init__(self, blobs: Blobs, head: bytes, keys: list[str]) -> None:
        self._blobs = blobs
        self._head = head
        self._keys = iter(keys)
        self._cur: IO[bytes] | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        while True:
            if self._head:
                n = min(len(view), len(self._head))
                view[:n] = self._head[:n]
                self._head = self._head[n:]
                return n
            if self._cur is None:
                key = next(self._keys, None)
                if key is None:
                    return 0
                self._cur = self._blobs.open(key)
            data = self._cur.read(len(view))
            if data:
                view[: len(data)] = data
                return len(data)
            self._cur.close()
            self._cur = None


def assemble_error_report(blobs: Blobs, account: str, import_id: str) -> str | None:
    """Join the per-chunk parts into one CSV (streamed), drop the parts, return its key."""
    prefix = f"imports/{account}/{import_id}/errors-part-"
    parts = sorted(k for k in blobs.list(prefix) if k.startswith(prefix))
    final = error_report_key(account, import_id)
    if not parts:
        return final if blobs.exists(final) else None
    stream = io.BufferedReader(_Concat(blobs, REPORT_HEADER, parts), 1 << 16)
    blobs.put_stream(final, stream, content_type="text/csv")
    for k in parts:
        blobs.delete(k)
    return final
