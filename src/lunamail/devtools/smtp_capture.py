"""A local SMTP capture server (aiosmtpd) for the demo, tests and development.

It accepts mail on 127.0.0.1, keeps it in memory or writes ``.eml`` files, and can
be scripted to behave like a real relay: per-recipient rejections, a 421, a
connection dropped once mid-transaction, STARTTLS, implicit TLS and AUTH.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["CaptureServer", "Received"]

Received = tuple[str, list[str], bytes]  # (mail_from, rcpt_tos, data)


def _abort(server: SMTP) -> None:
    """Drop the connection at once, without a reply (a relay that goes away)."""
    transport = server.transport
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    elif transport is not None:
        transport.close()


class _Handler:
    def __init__(self, owner: CaptureServer) -> None:
        self.owner = owner

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        # aiosmtpd reads commands one by one from a buffered stream, so pipelined
        # commands work; advertise it so clients batch MAIL/RCPT/DATA.
        session.host_name = hostname
        with self.owner._lock:
            self.owner.helo_names.append(hostname)
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.owner.drop:
            # the relay goes away in the middle of this recipient's transaction, no reply
            _abort(server)
            return "421 connection dropped (scripted)"
        scripted = self.owner.fail.get(address.lower())
        if scripted is not None:
            code, text = scripted
            if code == 421:
                self.owner._abort_later(server)
            return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        owner = self.owner
        with owner._lock:
            owner._data_seen += 1
            drop = owner.drop_once_after is not None and owner._data_seen > owner.drop_once_after
            if drop:
                owner.drop_once_after = None
        if drop:
            # the relay "crashes" after reading the data but before its reply: the client
            # must treat this mail as not accepted
            _abort(server)
            return "421 connection dropped (scripted)"
        if owner.delay > 0:  # a slow relay: the reply to the data comes late
            await asyncio.sleep(owner.delay)
        data = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        rcpts = list(envelope.rcpt_tos)
        with owner._lock:
            owner.count += 1
            if owner.out_dir is None:
                owner.messages.append((mail_from, rcpts, data))
            n = owner.count
        if owner.out_dir is not None:
            (owner.out_dir / f"{n:08d}-{uuid.uuid4().hex[:8]}.eml").write_bytes(data)
        return f"250 OK queued as {n:x}"


class _Smtp(SMTP):
    """Counts connections (not the second ``connection_made`` that STARTTLS causes)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:
            owner: CaptureServer = self.event_handler.owner
            with owner._lock:
                owner.sessions += 1
        super().connection_made(transport)


class CaptureServer:
    """Run with ``with CaptureServer() as srv:`` or ``start()``/``stop()``.

    ``messages`` holds ``(mail_from, rcpt_tos, data)`` when no ``out_dir`` is given;
    ``count`` is always the number of accepted messages and ``sessions`` the number of
    connections seen.  ``fail`` maps a recipient to the ``(code, text)`` its RCPT gets
    (a 421 also closes the connection); ``drop`` holds recipients whose RCPT aborts the
    connection without a reply, every time; ``drop_once_after = n`` aborts the connection
    after reading the data of message n+1, without replying, once; ``delay`` seconds
    pass between the end of each message's data and its reply (a slow relay)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        out_dir: Path | None = None,
        *,
        fail: Mapping[str, tuple[int, str]] | None = None,
        drop_once_after: int | None = None,
        drop: set[str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        require_starttls: bool = False,
        credentials: Mapping[str, str] | None = None,
        data_size_limit: int = 64 * 1024 * 1024,
        delay: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.fail: dict[str, tuple[int, str]] = {k.lower(): v for k, v in (fail or {}).items()}
        self.drop_once_after = drop_once_after
        self.drop: set[str] = {a.lower() for a in drop or ()}
        self.delay = delay
        self.messages: list[Received] = []
        self.count = 0
        self.sessions = 0
        self.helo_names: list[str] = []  # what each EHLO said
        self._data_seen = 0
        self._tls = tls_context
        self._implicit_tls = implicit_tls
        self._require_starttls = require_starttls
        self._credentials = dict(credentials) if credentials else None
        self._size = data_size_limit
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> CaptureServer:
        if self._thread is not None:
            raise RuntimeError("CaptureServer already started")
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smtp-capture", daemon=True)
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        try:
            fut.result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    async def _serve(self) -> None:
        assert self._loop is not None
        handler = _Handler(self)
        kwargs: dict[str, Any] = {
            "data_size_limit": self._size,
            "hostname": "capture.local",
            "ident": "Lunamail capture",
        }
        if self._tls is not None and not self._implicit_tls:
            kwargs["tls_context"] = self._tls
            kwargs["require_starttls"] = self._require_starttls
        if self._credentials is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            # with implicit TLS aiosmtpd cannot tell the session is encrypted
            kwargs["auth_require_tls"] = self._tls is not None and not self._implicit_tls

        def factory() -> SMTP:
            with warnings.catch_warnings():
                # implicit TLS: AUTH is encrypted although aiosmtpd's check cannot see it
                warnings.simplefilter("ignore", UserWarning)
                return _Smtp(handler, **kwargs)

        ssl_ctx = self._tls if self._implicit_tls else None
        self._server = await self._loop.create_server(factory, self.host, self.port, ssl=ssl_ctx)
        self.port = self._server.sockets[0].getsockname()[1]

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        creds = self._credentials or {}
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            ok = creds.get(user) == auth_data.password.decode("utf-8", "replace")
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)

    def _abort_later(self, server: SMTP) -> None:
        """Close the connection right after the current reply goes out (a relay's 421)."""
        assert self._loop is not None
        transport = server.transport
        if transport is not None:
            self._loop.call_soon(transport.close)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        server = self._server

        async def _shutdown() -> None:
            if server is not None:
                server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(_shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = None
            self._server = None

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- helpers for tests and the demo ------------------------------------------------

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        """Block until ``n`` messages were accepted (True) or ``timeout`` passed (False)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count >= n:
                return True
            time.sleep(0.01)
        return self.count >= n


def main(argv: list[str] | None = None) -> int:
    """``python -m lunamail.devtools.smtp_capture [--host H] [--port P] [--out DIR]``: run a
    capture server in the foreground until Ctrl-C or SIGTERM; with ``--out`` each accepted
    message is written there as an ``.eml`` file, else only counted."""
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m lunamail.devtools.smtp_capture",
                                     description="A local SMTP sink that keeps what it receives.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=2525, help="port (default 2525; 0 picks a free one)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the received .eml files")
    args = parser.parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with CaptureServer(args.host, args.port, out_dir=args.out) as server:
        where = f", writing to {args.out}" if args.out is not None else ""
        print(f"capturing SMTP on {args.host}:{server.port}{where} (Ctrl-C stops)", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print(f"stopped after {server.count} message(s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
