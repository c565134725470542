"""A real ``lunamail serve`` for the hostile suite: its own process (so its CPU and memory can
be read from ``/proc``), a fresh data folder, a free port on 127.0.0.1, tight edge limits."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts
from tests.support.motoserver import free_port

HOST = "127.0.0.1"
# Tight limits so each case is short; the defaults only differ in their numbers.
EXTRA = {
    "edge_head_timeout": 1.5,
    "edge_body_timeout": 2.0,
    "edge_max_head_bytes": 16384,
    "edge_max_body_bytes": 65536,
    "edge_max_connections": 700,
    "max_upload_bytes": 1 << 20,
}


@dataclass
class Served:
    data: Path
    extra: dict[str, float | int] = field(default_factory=lambda: dict(EXTRA))
    port: int = 0
    key: str = ""
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def __enter__(self) -> Served:
        with bootstrap_in(self.data) as system:
            accounts.create_account(system.deps, "Default", account_id="default")
            self.key = accounts.create_api_key(system.deps, "default", "hostile").secret
        lines = [f"{k} = {v!r}" for k, v in self.extra.items()]
        (self.data / "lunamail.toml").write_text("\n".join(lines) + "\n", "utf-8")
        self.port = free_port()
        self.log = self.data.parent / "serve.log"
        env = {**os.environ, "LUNAMAIL_DATA_DIR": str(self.data)}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lunamail", "serve", "--port", str(self.port),
                 "--worker-processes", "0"], env=env, stdout=out, stderr=subprocess.STDOUT)
        for _ in range(600):  # bounded wait for the port, not a timing assertion
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text(errors='replace')}")
            try:
                if b" 200 " in request(self.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 1.0)[:20]:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("serve did not come up")

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu(self) -> float:
        """User + system CPU seconds of the server process so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def output(self) -> str:
        assert self.log is not None
        return self.log.read_text("utf-8", errors="replace")

    def alive_within(self, deadline: float = 1.0) -> bool:
        """Whether a normal request (``GET /health`` on a new connection) is answered 200
        within ``deadline`` seconds: the liveness bound while an attack runs."""
        try:
            return request(self.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", deadline,
                           until=b'"ok"}').startswith(b"HTTP/1.1 200 ")
        except OSError:
            return False


def request(port: int, data: bytes, timeout: float, until: bytes | None = None) -> bytes:
    """Send ``data`` on a new connection, return what comes back until the server closes it
    (or ``until`` arrived, or ``timeout`` passed: then what arrived so far)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        end = time.monotonic() + timeout
        with contextlib.suppress(OSError):  # the server refused mid-send: read its answer
            s.sendall(data)
        out = b""
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if until is not None and until in out:
                break
        return out


def status_of(answer: bytes) -> int:
    """The status code of a raw answer, 0 when there is none."""
    if not answer.startswith(b"HTTP/1."):
        return 0
    return int(answer.split(b" ", 2)[1])


def clean_refusal(answer: bytes, statuses: tuple[int, ...]) -> bool:
    """A 4xx in ``statuses`` with the API's JSON error shape."""
    import json

    if status_of(answer) not in statuses:
        return False
    body = answer.partition(b"\r\n\r\n")[2]
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and {"code", "message", "details"} <= set(error)
