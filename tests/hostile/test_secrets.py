"""Secrets stay secret: passwords and keys are redacted in CLI errors, logs and dead letters;
the data folder is 0700 and its databases 0600."""

from __future__ import annotations

import io
import logging
import stat
from pathlib import Path

import pytest
import typer

from lunamail.entrypoints.cli.common import fail
from lunamail.lib.redact import RedactingFilter, redact
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.runtime.worker import describe_error
from tests.hostile import sheet

SECRETS = [
    ("smtp+starttls://news:S3cr3t-pw@smtp.example.com:587", "S3cr3t-pw"),
    ("smtps://user%40example.com:p%40ss:word@relay.example.net", "p%40ss"),
    ("Authorization: Bearer lm_abcdefghijklmnop1234", "lm_abcdefghijklmnop1234"),
    ("key lm_Zy0123456789abcdefXYZ was shown once", "lm_Zy0123456789abcdefXYZ"),
    ("password=hunter22&user=x", "hunter22"),
    ("{'smtp_password': 'topsecret9'}", "topsecret9"),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS, ids=[s for _, s in SECRETS])
def test_redact_removes_the_secret_and_keeps_the_rest(text: str, secret: str) -> None:
    clean = redact(text)
    ok = secret not in clean and "***" in clean
    sheet.record("secrets", f"redact {secret[:6]}…", 1, int(ok), int(not ok))
    assert ok, clean
    if "://" in text:
        assert clean.split("://")[0] == text.split("://")[0]  # the scheme and host stay readable
        assert text.rsplit("@", 1)[1] in clean


def test_a_dead_letter_never_holds_the_smtp_password() -> None:
    try:
        raise ConnectionError("cannot use smtp+starttls://news:S3cr3t-pw@smtp.example.com:587")
    except ConnectionError as exc:
        error = describe_error(exc)
    assert "S3cr3t-pw" not in error and "smtp.example.com" in error


def test_logs_are_redacted_messages_and_tracebacks() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("lunamail.test.redact")
    log.addHandler(handler)
    try:
        log.warning("connecting to %s", "smtp://u:S3cr3t-pw@h:25")
        try:
            raise ValueError("bad URL smtp://u:S3cr3t-pw@h:25")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert "S3cr3t-pw" not in text
    assert "smtp://u:***@h:25" in text and "ValueError" in text


def test_cli_errors_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit):
        fail("the relay smtp://news:S3cr3t-pw@smtp.example.com refused us", as_json=True)
    printed = capsys.readouterr()
    assert "S3cr3t-pw" not in printed.out + printed.err
    assert "smtp.example.com" in printed.out


def test_the_data_folder_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with bootstrap_in(data) as system:
        system.bus.publish([])  # the queue and store are open and written
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir() if p.is_file()}
    folder = stat.S_IMODE(data.stat().st_mode)
    dbs = {n: m for n, m in modes.items() if ".db" in n or n == "master.key"}
    ok = folder == 0o700 and dbs and all(m & 0o077 == 0 for m in dbs.values())
    sheet.record("secrets", "data folder modes", 1 + len(dbs), (1 + len(dbs)) if ok else 0, int(not ok))
    assert folder == 0o700
    assert {"lunamail.db", "queue.db", "master.key"} <= set(dbs)
    assert all(m & 0o077 == 0 for m in dbs.values()), dbs


def test_an_older_world_readable_folder_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "old"
    data.mkdir(mode=0o755)
    (data / "lunamail.db").touch(mode=0o644)
    with bootstrap_in(data):
        pass
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "lunamail.db").stat().st_mode) == 0o600
