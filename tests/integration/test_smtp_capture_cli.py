"""``python -m lunamail.devtools.smtp_capture`` runs a sink until it is told to stop."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

from tests.support.motoserver import free_port


def test_the_module_captures_mail_to_files_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "outbox"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lunamail.devtools.smtp_capture", "--port", str(port), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line, line
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("a@example.com", ["b@example.org"], b"Subject: hi\r\n\r\nhello\r\n")
        files = list(out.glob("*.eml"))
        assert len(files) == 1 and b"hello" in files[0].read_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "stopped after 1 message" in err
