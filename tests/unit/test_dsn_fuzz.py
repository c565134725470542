"""The classifier never raises: random bytes, mutated corpus files, random MIME trees."""

from __future__ import annotations

from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lunamail.services.feedback import dsn
from lunamail.services.feedback.dsn import Classification


def classify(raw: bytes) -> Classification:
    """Both the public function and the parser under its last-resort ``except``: the
    guards inside must hold on their own, so a bug shows up here instead of as a
    silent ``kind="other"``."""
    inner = dsn._classify(raw, None)
    outer = dsn.classify(raw)
    assert outer.to_dict() == inner.to_dict()
    return outer


CORPUS = Path(__file__).resolve().parents[1] / "data" / "dsn"
SAMPLES = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
KINDS = {"bounce", "complaint", "auto-reply", "delay", "other"}


def check(result: Classification) -> None:
    """Whatever came in, the result is well-formed and JSON-serialisable."""
    assert isinstance(result, Classification)
    doc = result.to_dict()
    assert doc["kind"] in KINDS
    assert doc["bounce_type"] in (None, "hard", "soft", "sender")
    assert (doc["bounce_type"] is not None) == (doc["kind"] == "bounce")
    assert all(isinstance(r, str) for r in doc["recipients"])
    orjson.dumps(doc)


@given(st.binary(max_size=4000))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes(raw: bytes) -> None:
    check(classify(raw))


@given(
    sample=st.sampled_from(SAMPLES),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "cut", "insert", "dup"]),
            st.floats(min_value=0, max_value=1),
            st.binary(min_size=1, max_size=40),
        ),
        min_size=1,
        max_size=8,
    ),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_corpus(sample: bytes, edits: list[tuple[str, float, bytes]]) -> None:
    raw = bytearray(sample)
    for op, where, blob in edits:
        pos = int(where * len(raw)) if raw else 0
        if op == "flip" and raw:
            raw[min(pos, len(raw) - 1)] ^= blob[0]
        elif op == "cut":
            del raw[pos : pos + len(blob) * 20]
        elif op == "insert":
            raw[pos:pos] = blob
        else:
            raw[pos:pos] = raw[pos : pos + 200]
    check(classify(bytes(raw)))


@given(sample=st.sampled_from(SAMPLES), cut=st.floats(min_value=0, max_value=1))
def test_truncated_corpus(sample: bytes, cut: float) -> None:
    check(classify(sample[: int(cut * len(sample))]))


CTYPES = [
    "text/plain",
    "text/html",
    "message/delivery-status",
    "message/feedback-report",
    "message/rfc822",
    "text/rfc822-headers",
    "application/octet-stream",
    "message/global-delivery-status",
]
MULTI = [
    "multipart/report; report-type=delivery-status",
    "multipart/report; report-type=feedback-report",
    "multipart/mixed",
    "multipart/alternative",
    "multipart/related",
]
header_names = st.sampled_from(
    [
        "Final-Recipient",
        "Action",
        "Status",
        "Diagnostic-Code",
        "Original-Rcpt-To",
        "Feedback-Type",
        "Subject",
        "From",
        "To",
        "Auto-Submitted",
        "Content-Transfer-Encoding",
        "X-Failed-Recipients",
        "Return-Path",
        "Message-ID",
        "Original-Recipient",
    ]
)
header_values = st.one_of(
    st.sampled_from(
        [
            "rfc822; a@example.com",
            "failed",
            "delayed",
            "5.1.1",
            "4.2.2",
            "smtp; 550 5.1.1 x",
            "abuse",
            "base64",
            "quoted-printable",
            "=?utf-8?b?w6k=?=",
            "=?bogus?q?x?=",
            "<b+abcdefghijklmnopqrstu@example.com>",
            "MAILER-DAEMON@example.org",
            "",
        ]
    ),
    st.text(max_size=60).map(lambda s: s.replace("\r", " ").replace("\n", " ")),
)
charsets = st.sampled_from(
    ["utf-8", "us-ascii", "iso-8859-1", "x-unknown-charset", "utf-7", "cp1252"]
)


def leaf() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda ct, cs, headers, body: (
            f"Content-Type: {ct}; charset={cs}\r\n".encode()
            + b"".join(f"{k}: {v}\r\n".encode("utf-8", "surrogateescape") for k, v in headers)
            + b"\r\n"
            + body
        ),
        st.sampled_from(CTYPES),
        charsets,
        st.lists(st.tuples(header_names, header_values), max_size=6),
        st.one_of(
            st.binary(max_size=300),
            st.sampled_from(
                [
                    b"Final-Recipient: rfc822; x@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n",
                    b"Feedback-Type: abuse\r\nOriginal-Rcpt-To: y@example.net\r\n",
                    b"<z@example.org>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n",
                    b"\xff\xfe\x00garbage=\r\n=ZZ",
                ]
            ),
        ),
    )


def node(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda ct, boundary, parts, close: (
            f'Content-Type: {ct}; boundary="{boundary}"\r\n\r\npreamble\r\n'.encode()
            + b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
            + ((b"--" + boundary.encode() + b"--\r\n") if close else b"")
        ),
        st.sampled_from(MULTI),
        st.sampled_from(["b1", "b2", "=_x", "b1"]),  # repeated boundaries on purpose
        st.lists(children, max_size=4),
        st.booleans(),
    )


mime_trees = st.recursive(leaf(), node, max_leaves=12)


@given(tree=mime_trees, top=st.lists(st.tuples(header_names, header_values), max_size=5))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_random_mime_trees(tree: bytes, top: list[tuple[str, str]]) -> None:
    head = b"".join(f"{k}: {v}\r\n".encode("utf-8", "surrogateescape") for k, v in top)
    check(classify(b"MIME-Version: 1.0\r\n" + head + tree))


def test_pathological_inputs() -> None:
    for levels in (250, 3000):  # deep enough to exhaust the stdlib parser's recursion
        deep = b"From: a@example.com\r\nSubject: Out of office\r\n" + b"".join(
            f'Content-Type: multipart/mixed; boundary="d{i}"\r\n\r\n--d{i}\r\n'.encode()
            for i in range(levels)
        )
        assert classify(deep).kind == "auto-reply"  # the headers still count
    huge_header = (
        b"Subject: " + b"x" * 2_000_000 + b"\r\nFrom: MAILER-DAEMON@example.org\r\n\r\nbody"
    )
    many_headers = b"".join(b"X-H%d: v\r\n" % i for i in range(50_000)) + b"\r\n"
    for raw in (
        b"",
        b"\r\n\r\n",
        huge_header,
        many_headers,
        b"\x00" * 10_000,
        "é".encode("utf-16"),
    ):
        check(classify(raw))
    check(dsn.classify("not bytes at all"))  # type: ignore[arg-type]
    check(dsn.classify(None))  # type: ignore[arg-type]
