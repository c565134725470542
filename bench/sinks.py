"""Benchmark sinks: Postfix's ``smtp-sink``, a fast SMTP server that discards mail.

aiosmtpd tops out near 1,000 messages/s and would cap any client benchmark, so the
client is measured against ``smtp-sink``.  When it is not installed, the Debian
``postfix`` package is downloaded (not installed) and unpacked under ``bench/.work/``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

WORK = Path(__file__).resolve().parent / ".work"


def find_smtp_sink() -> Path:
    """Path of an ``smtp-sink`` binary, fetching the postfix .deb into bench/.work if needed."""
    found = shutil.which("smtp-sink")
    if found:
        return Path(found)
    local = WORK / "postfix" / "usr" / "sbin" / "smtp-sink"
    if local.exists():
        return local
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "postfix"], cwd=WORK, check=True, capture_output=True)
    debs = sorted(WORK.glob("postfix_*.deb"))
    if not debs:
        raise RuntimeError("apt-get download postfix produced no .deb")
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(WORK / "postfix")], check=True)
    if not local.exists():
        raise RuntimeError(f"smtp-sink not found in {debs[-1].name}")
    return local


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """``with SmtpSink() as sink:`` runs ``smtp-sink`` on 127.0.0.1:``sink.port``.

    Flags: ``-c`` counts messages (printed on exit), ``-u`` names the user to run as when
    started by root (smtp-sink refuses to keep root privileges), backlog 1000."""

    def __init__(self, backlog: int = 1000) -> None:
        self.binary = find_smtp_sink()
        self.port = free_port()
        self.backlog = backlog
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SmtpSink:
        cmd = [str(self.binary), "-c"]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        cmd += [f"127.0.0.1:{self.port}", str(self.backlog)]
        env = dict(os.environ)
        lib = self.binary.parent.parent / "lib" / "postfix"
        if lib.is_dir():  # postfix's private shared libraries, for an unpacked .deb
            env["LD_LIBRARY_PATH"] = f"{lib}:{env.get('LD_LIBRARY_PATH', '')}"
        self._proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"smtp-sink exited: {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start listening")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


if __name__ == "__main__":
    with SmtpSink() as sink:
        print(f"smtp-sink {sink.binary} listening on 127.0.0.1:{sink.port}")
