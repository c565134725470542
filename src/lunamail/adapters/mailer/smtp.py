"""SMTP mailer: a lean pipelined asyncio client on persistent connections.

General-purpose clients (aiosmtplib) spend ~430 µs of CPU per message on
coroutines, futures and parsing layers.  Here each connection is a bare
``asyncio.Protocol`` and one coroutine drives it: per message it writes the end of
the previous message's data together with the next MAIL/RCPT/DATA (RFC 2920), so a
message costs one round trip and a few tens of microseconds of CPU.

The event loop runs in a thread owned by the mailer, so ``send()`` is a plain
blocking call usable from any worker thread; results flow back to the calling
thread through a queue and ``on_result`` runs there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import queue
import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from lunamail.lib.redact import redact
from lunamail.ports.mailer import OutgoingMail, SendResult, StopCheck
from lunamail.ports.pacer import Pacer

__all__ = ["SmtpMailer", "SmtpSettings"]

Security = Literal["plain", "starttls", "tls"]
# STARTTLS on smtp:// -- "opportunistic" (default: upgrade whenever the relay offers it,
# RFC 7435), "required" (as smtp+starttls://), "off" (never).
TlsMode = Literal["required", "opportunistic", "off"]
_DEFAULT_PORTS = {"plain": 25, "starttls": 587, "tls": 465}
_SCHEMES: dict[str, Security] = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}
_QUEUED_AS = re.compile(r"queued as ([0-9A-Za-z]+)")
_ANY_NEWLINE = re.compile(rb"\r\n|\r|\n")
_FEED_CHUNK = 32  # mails handed to the loop per wake-up


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: Security = "plain"
    username: str | None = None
    password: str | None = None
    verify: bool = True
    helo: str | None = None
    tls: TlsMode = "opportunistic"
    connections: int = 4
    timeout: float = 30.0


class SmtpError(Exception):
    """A connection-level failure; its ``code``/``text`` become the mails' 4xx result."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class _ServerClosing(Exception):
    """The server sent 421: it is closing the connection."""


@dataclass(slots=True)
class _Job:
    # results cross to the calling thread in lists, one hand-off per loop tick: waking
    # the caller once per reply costs more GIL ping-pong than the SMTP work itself
    # an int is a count of mails withdrawn after a stop (they get no result)
    results: queue.SimpleQueue[list[SendResult] | int] = field(default_factory=queue.SimpleQueue)
    pending: list[SendResult] = field(default_factory=list)
    stopped: bool = False  # set on the loop: start no new transaction for this job


@dataclass(slots=True)
class _Item:
    mail: OutgoingMail
    job: _Job
    attempts: int = 0


def _stuffed(data: bytes) -> bytes:
    """The DATA payload: CRLF everywhere (a bare CR/LF would let a relay see a different
    end of data than we meant — SMTP smuggling), dot-stuffed, ending in ``.\\r\\n``."""
    n = data.count(b"\r\n")
    if data.count(b"\n") != n or data.count(b"\r") != n:
        data = _ANY_NEWLINE.sub(b"\r\n", data)
    data = data.replace(b"\r\n.", b"\r\n..")
    if data[:1] == b".":
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class _Connection(asyncio.Protocol):
    """Reply parser and writer for one SMTP connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.error: Exception | None = None
        self.caps: dict[str, str] = {}
        self.tls = False  # upgraded with STARTTLS
        # the last transaction was refused half-way (MAIL or RCPT): the next one starts with
        # RSET, also when it comes in a later session on this connection (else "503 nested MAIL")
        self.need_rset = False
        self.inflight: list[_Item] = []  # written, no final reply yet
        self._buf = b""
        self._lines: list[str] = []
        self._replies: deque[tuple[int, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._paused: asyncio.Future[None] | None = None
        self._last = time.monotonic()
        self._watchdog: asyncio.TimerHandle | None = None

    # protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._last = time.monotonic()
        if self._watchdog is None:
            self._watchdog = self.loop.call_later(min(1.0, self.timeout / 2), self._check_timeout)

    def data_received(self, data: bytes) -> None:
        self._last = time.monotonic()
        buf = self._buf + data if self._buf else data
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = buf[start:end].rstrip(b"\r").decode("utf-8", "replace")
            start = end + 1
            self._lines.append(line[4:])
            if line[3:4] != "-":
                try:
                    code = int(line[:3])
                except ValueError:
                    code = 500
                self._replies.append((code, "\n".join(self._lines)))
                self._lines = []
        self._buf = buf[start:]
        if len(self._buf) > 65536:
            self._fail(SmtpError(451, "4.4.2 reply line too long"))
            return
        w = self._waiter
        if w is not None and self._replies and not w.done():
            w.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.error is None:
            self.error = SmtpError(451, f"4.4.2 connection lost ({exc or 'closed by server'})")
        if self._watchdog is not None:
            self._watchdog.cancel()
        for f in (self._waiter, self._paused):
            if f is not None and not f.done():
                f.set_result(None)

    def pause_writing(self) -> None:
        self._paused = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)
        self._paused = None

    # helpers
    def _check_timeout(self) -> None:
        self._watchdog = None
        if self.closed:
            return
        busy = self._waiter is not None or self._paused is not None
        if busy and time.monotonic() - self._last > self.timeout:
            self._fail(SmtpError(451, f"4.4.2 timeout: no reply in {self.timeout:g}s"))
            return
        self._watchdog = self.loop.call_later(min(1.0, self.timeout / 2), self._check_timeout)

    def _fail(self, err: Exception) -> None:
        if self.error is None:
            self.error = err
        if self.transport is not None:
            self.transport.abort()

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise self.error or SmtpError(451, "4.4.2 connection closed")
        self._last = time.monotonic()
        self.transport.write(data)

    async def drain(self) -> None:
        if self._paused is not None:
            await self._paused
        if self.closed:
            raise self.error or SmtpError(451, "4.4.2 connection closed")

    async def reply(self) -> tuple[int, str]:
        """The next reply; raises when the connection is gone and no reply is buffered."""
        while not self._replies:
            if self.closed:
                raise self.error or SmtpError(451, "4.4.2 connection closed")
            self._waiter = self.loop.create_future()
            self._last = time.monotonic()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._replies.popleft()

    async def command(self, line: str) -> tuple[int, str]:
        self.write(line.encode("utf-8") + b"\r\n")
        return await self.reply()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


class SmtpMailer:
    """``Mailer`` over SMTP with ``connections`` persistent, pipelined sessions.

    Every mail gets exactly one result: the relay's reply, or a 4xx when the
    connection failed twice for it (the first failure re-queues it once, for a
    fresh connection).  A 421 reply is that mail's result and closes the connection.
    """

    def __init__(self, settings: SmtpSettings, *, pacer: Pacer | None = None) -> None:
        if settings.connections < 1:
            raise ValueError("connections must be at least 1")
        self.settings = settings
        self.pacer = pacer
        self._ssl: ssl.SSLContext | None = None
        if settings.security != "plain" or settings.username:
            self._ssl = ssl.create_default_context()
            if not settings.verify:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        # Opportunistic TLS encrypts against passive listeners; it cannot authenticate a relay
        # that never promised a certificate, so it does not verify (unless credentials go over
        # it, where the verified context above is used).
        self._opportunistic: ssl.SSLContext | None = None
        if settings.security == "plain" and settings.tls == "opportunistic":
            if self._ssl is not None:
                self._opportunistic = self._ssl
            else:
                self._opportunistic = ssl.create_default_context()
                self._opportunistic.check_hostname = False
                self._opportunistic.verify_mode = ssl.CERT_NONE
        self._helo = settings.helo or socket.gethostname() or "localhost"
        self._queue: deque[_Item] = deque()
        self._idle: list[asyncio.Future[None]] = []
        self._closing = False
        self._slot_start = 0.0
        self._slot_spacing = 0.0
        self._slot_next = 0
        self._slot_count = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smtp-mailer", daemon=True)
        self._thread.start()
        self._workers = [
            asyncio.run_coroutine_threadsafe(self._worker(), self._loop) for _ in range(settings.connections)
        ]

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        connections: int = 4,
        timeout: float = 30.0,
        pacer: Pacer | None = None,
        helo: str | None = None,
    ) -> SmtpMailer:
        """``smtp://``, ``smtp+starttls://`` or ``smtps://``, optional ``user:pass@``
        (percent-encoded), ``?verify=false`` for self-signed relays in development, and on
        ``smtp://`` ``?tls=opportunistic`` (default: STARTTLS when offered), ``required`` or
        ``off``.  ``?helo=`` (or ``helo``) names this client in EHLO."""
        parts = urlsplit(url)
        security = _SCHEMES.get(parts.scheme.lower())
        if security is None:
            raise ValueError(f"SMTP URL {redact(url)!r}: scheme must be one of {', '.join(_SCHEMES)}")
        if not parts.hostname:
            raise ValueError(f"SMTP URL {redact(url)!r}: no host")
        opts = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(opts) - {"verify", "helo", "tls"}
        if unknown:
            raise ValueError(f"SMTP URL: unknown option(s) {', '.join(sorted(unknown))}")
        verify = opts.get("verify", "true").lower() not in ("false", "0", "no", "off")
        tls = opts.get("tls", "opportunistic" if security == "plain" else "required").lower()
        if tls not in ("required", "opportunistic", "off"):
            raise ValueError("SMTP URL: tls must be required, opportunistic or off")
        if security == "plain" and tls == "required":
            security = "starttls"
        elif security != "plain" and tls != "required":
            raise ValueError(f"SMTP URL: {parts.scheme}:// always uses TLS; tls={tls} applies to smtp:// only")
        settings = SmtpSettings(
            host=parts.hostname,
            port=parts.port or _DEFAULT_PORTS[security],
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            verify=verify,
            helo=opts.get("helo") or helo,
            tls="required" if security != "plain" else ("off" if tls == "off" else "opportunistic"),
            connections=connections,
            timeout=timeout,
        )
        return cls(settings, pacer=pacer)

    # -- caller side (any thread) ---------------------------------------------------

    def send(
        self,
        mails: Iterable[OutgoingMail],
        on_result: Callable[[SendResult], None],
        stop: StopCheck | None = None,
    ) -> None:
        """Feed mails to the loop in small chunks (so rendering in the caller overlaps with
        sending, and memory stays bounded), and call ``on_result`` in this thread as
        replies arrive.  Returns when every mail fed has a result.

        ``stop`` is asked at least every 0.1 s.  When it says so, the mails still queued
        in the loop are withdrawn (no result); each connection finishes only what it was
        already handed: the message whose DATA went out and the one whose commands did
        (pipelining depth 2)."""
        if self._closing:
            raise RuntimeError("SmtpMailer is closed")
        job = _Job()
        limit = max(256, 64 * self.settings.connections)
        rate = self.pacer.current_rate() if self.pacer is not None else 0.0
        if rate > 0:  # paced: hold about a quarter second of mails, so a stop wastes no slots
            limit = max(4 * self.settings.connections, min(limit, int(rate / 4)))
        it = iter(mails)
        fed = done = 0
        exhausted = False
        error: BaseException | None = None

        def deliver(batch: list[SendResult] | int) -> None:
            nonlocal done, error
            if isinstance(batch, int):  # withdrawn after a stop
                done += batch
                return
            done += len(batch)
            for r in batch:
                if error is None:
                    try:
                        on_result(r)
                    except BaseException as e:  # keep draining: those mails were sent
                        error = e

        while True:
            while True:
                try:
                    r = job.results.get_nowait()
                except queue.Empty:
                    break
                deliver(r)
            if stop is not None and not job.stopped and stop():
                job.stopped = True  # the loop drops what it pops from now on; _withdraw the rest
                self._loop.call_soon_threadsafe(self._withdraw, job)
                exhausted = True
            if not exhausted and error is None and fed - done < limit:
                try:
                    chunk = [_Item(m, job) for m in islice(it, _FEED_CHUNK)]
                except BaseException as e:
                    error, chunk = e, []
                if chunk:
                    fed += len(chunk)
                    self._loop.call_soon_threadsafe(self._enqueue, chunk)
                    continue
                exhausted = True
            if done == fed and (exhausted or error is not None):
                break
            if stop is None or job.stopped:
                deliver(job.results.get())
            else:
                with contextlib.suppress(queue.Empty):
                    deliver(job.results.get(timeout=0.1))
        if error is not None:
            raise error

    def close(self) -> None:
        """QUIT every connection and stop the loop thread."""
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(
                timeout=self.settings.timeout + 5
            )
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> SmtpMailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- loop side --------------------------------------------------------------------

    def _enqueue(self, items: list[_Item]) -> None:
        self._queue.extend(items)
        self._wake()

    def _withdraw(self, job: _Job) -> None:
        """A stop: take this job's mails that no connection has started off the queue."""
        job.stopped = True
        keep = deque(i for i in self._queue if i.job is not job)
        n = len(self._queue) - len(keep)
        self._queue = keep
        if n:
            job.results.put(n)

    @staticmethod
    def _drop(item: _Item) -> None:
        """A mail of a stopped job that no transaction holds any more: no result."""
        item.job.results.put(1)

    def _wake(self) -> None:
        idle, self._idle = self._idle, []
        for f in idle:
            if not f.done():
                f.set_result(None)

    def _report(self, conn: _Connection | None, item: _Item, code: int, text: str) -> None:
        if conn is not None:
            with contextlib.suppress(ValueError):
                conn.inflight.remove(item)
        mid = None
        if code == 250:
            m = _QUEUED_AS.search(text)
            mid = m.group(1) if m else None
        job = item.job
        if not job.pending:
            self._loop.call_soon(self._flush, job)
        job.pending.append(SendResult(item.mail.ref, item.mail.rcpt_to, code, text, mid))
        if code in (421, 454) and self.pacer is not None:
            with contextlib.suppress(Exception):
                self.pacer.throttled()

    @staticmethod
    def _flush(job: _Job) -> None:
        batch, job.pending = job.pending, []
        job.results.put(batch)

    def _retry_or_fail(self, items: Iterable[_Item], err: Exception) -> None:
        """Mails without a final reply: once more on a fresh connection, then a 4xx."""
        code, text = (err.code, err.text) if isinstance(err, SmtpError) else (451, f"4.4.2 {err!r}")
        if not 400 <= code < 500:
            code, text = 451, f"4.4.2 {code} {text}"
        retry = []
        for item in items:
            if item.job.stopped:  # no fresh transaction after a stop: the caller resends later
                self._drop(item)
            elif item.attempts == 0:
                item.attempts = 1
                retry.append(item)
            else:
                self._report(None, item, code, text)
        if retry:
            self._queue.extendleft(reversed(retry))
            self._wake()

    async def _worker(self) -> None:
        conn: _Connection | None = None
        while not self._closing:
            if not self._queue:
                fut = self._loop.create_future()
                self._idle.append(fut)
                await fut
                continue
            if conn is None or conn.closed:
                try:
                    conn = await self._connect()
                except Exception as e:
                    conn = None
                    # the relay is unreachable for every queued mail, not just one
                    pending = list(self._queue)
                    self._queue.clear()
                    self._retry_or_fail(pending, e)
                    await asyncio.sleep(0.05)
                    continue
            try:
                await self._session(conn)
            except Exception as e:
                inflight, conn.inflight = conn.inflight, []
                err = conn.error if isinstance(e, _ServerClosing) and conn.error else e
                conn.close()
                conn = None
                self._retry_or_fail(inflight, err)
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.command("QUIT"), 2.0)
            conn.close()

    async def _shutdown(self) -> None:
        self._wake()
        await asyncio.gather(*(asyncio.wrap_future(w) for w in self._workers), return_exceptions=True)
        while self._queue:  # a close() racing a send(): those mails were never written
            self._report(None, self._queue.popleft(), 451, "4.3.2 mailer closed before sending")

    async def _connect(self) -> _Connection:
        s = self.settings
        loop = self._loop
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(loop, s.timeout),
                    s.host,
                    s.port,
                    ssl=self._ssl if s.security == "tls" else None,
                    server_hostname=s.host if s.security == "tls" else None,
                ),
                s.timeout,
            )
        except (TimeoutError, OSError) as e:
            raise SmtpError(451, f"4.4.1 cannot connect to {s.host}:{s.port}: {e!r}") from e
        try:
            await asyncio.wait_for(self._handshake(conn), s.timeout)
        except BaseException:
            conn.close()
            raise
        return conn

    async def _handshake(self, conn: _Connection) -> None:
        s = self.settings
        code, text = await conn.reply()
        if code != 220:
            raise SmtpError(421 if code == 421 else 451, f"4.4.0 relay greeting: {code} {text}")
        await self._ehlo(conn)
        upgrade = s.security == "starttls" or (self._opportunistic is not None and "STARTTLS" in conn.caps)
        if upgrade:
            if "STARTTLS" not in conn.caps:
                raise SmtpError(451, "4.7.0 relay does not offer STARTTLS")
            code, text = await conn.command("STARTTLS")
            if code != 220:
                raise SmtpError(451, f"4.7.0 STARTTLS refused: {code} {text}")
            context = self._ssl if s.security == "starttls" else self._opportunistic
            assert conn.transport is not None and context is not None
            tls = await self._loop.start_tls(conn.transport, conn, context, server_hostname=s.host)
            assert isinstance(tls, asyncio.Transport)
            conn.transport = tls
            conn.tls = True
            await self._ehlo(conn)
        if s.username:
            await self._auth(conn, s.username, s.password or "")

    async def _ehlo(self, conn: _Connection) -> None:
        code, text = await conn.command(f"EHLO {self._helo}")
        conn.caps = {}
        if code == 250:
            for line in text.split("\n")[1:]:
                key, _, val = line.partition(" ")
                conn.caps[key.upper()] = val
            return
        code, text = await conn.command(f"HELO {self._helo}")
        if code != 250:
            raise SmtpError(451, f"4.4.0 HELO refused: {code} {text}")

    async def _auth(self, conn: _Connection, user: str, password: str) -> None:
        methods = conn.caps.get("AUTH", "").upper().split()
        if "PLAIN" in methods:
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
            code, text = await conn.command(f"AUTH PLAIN {token}")
        elif "LOGIN" in methods:
            code, text = await conn.command("AUTH LOGIN")
            if code == 334:
                code, text = await conn.command(base64.b64encode(user.encode()).decode("ascii"))
            if code == 334:
                code, text = await conn.command(base64.b64encode(password.encode()).decode("ascii"))
        else:
            raise SmtpError(451, "4.7.0 relay offers no AUTH PLAIN or LOGIN")
        if code != 235:
            raise SmtpError(451, f"4.7.0 authentication failed: {code} {text}")

    async def _slot(self) -> float:
        """Seconds to wait before the next message may be written (pacer schedule)."""
        assert self.pacer is not None
        now = time.time()
        if self._slot_next < self._slot_count:
            at = self._slot_start + self._slot_next * self._slot_spacing
            # a slot we are late for by more than one spacing is dropped, not used in a
            # burst: unused slots only ever lower the rate
            if at >= now - self._slot_spacing:
                self._slot_next += 1
                return at - now
        n = max(1, min(50, len(self._queue) + 1))
        self._slot_start, self._slot_spacing = self.pacer.reserve(n)
        self._slot_next, self._slot_count = 1, n
        return self._slot_start - now

    async def _reply_for(self, conn: _Connection, item: _Item | None) -> tuple[int, str]:
        code, text = await conn.reply()
        if code == 421:
            if item is not None:
                self._report(conn, item, code, text)
            conn.error = SmtpError(421, text)
            raise _ServerClosing(text)
        return code, text

    async def _session(self, conn: _Connection) -> None:
        """Run transactions on ``conn`` until the queue is empty."""
        pipelining = "PIPELINING" in conn.caps
        size_limit = int(conn.caps.get("SIZE") or 0) if (conn.caps.get("SIZE") or "0").isdigit() else 0
        tail = b""  # data of the previous message, not written yet
        tail_item: _Item | None = None
        need_rset = conn.need_rset
        while True:
            item = self._queue.popleft() if self._queue else None
            if item is None or self._closing:
                conn.need_rset = need_rset
                if item is not None:
                    self._queue.appendleft(item)
                if tail_item is not None:
                    conn.write(tail)
                    code, text = await self._reply_for(conn, tail_item)
                    self._report(conn, tail_item, code, text)
                return
            if item.job.stopped:
                self._drop(item)
                continue
            mail = item.mail
            if size_limit and len(mail.data) > size_limit:
                self._report(None, item, 552, f"5.3.4 message size {len(mail.data)} exceeds relay limit {size_limit}")
                continue
            if self.pacer is not None:
                wait = await self._slot()
                if wait > 0:
                    if tail_item is not None:  # do not hold the previous message back
                        conn.write(tail)
                        tail = b""
                    await asyncio.sleep(wait)
                    if item.job.stopped:  # stopped while waiting for its slot
                        self._drop(item)
                        continue
            conn.inflight.append(item)
            cmds = f"MAIL FROM:<{mail.mail_from}>\r\nRCPT TO:<{mail.rcpt_to}>\r\nDATA\r\n".encode()
            if need_rset:
                cmds = b"RSET\r\n" + cmds
            if pipelining:
                conn.write(tail + cmds if tail else cmds)
                tail = b""
                if tail_item is not None:
                    code, text = await self._reply_for(conn, tail_item)
                    self._report(conn, tail_item, code, text)
                    tail_item = None
                if need_rset:
                    await self._reply_for(conn, None)
                mail_r = await self._reply_for(conn, item)
                rcpt_r = await self._reply_for(conn, item)
                data_r = await self._reply_for(conn, item)
            else:
                if tail_item is not None:
                    if tail:
                        conn.write(tail)
                        tail = b""
                    code, text = await self._reply_for(conn, tail_item)
                    self._report(conn, tail_item, code, text)
                    tail_item = None
                if need_rset:
                    await conn.command("RSET")
                mail_r = rcpt_r = data_r = await self._command(conn, item, f"MAIL FROM:<{mail.mail_from}>".encode())
                if mail_r[0] == 250:
                    rcpt_r = data_r = await self._command(conn, item, f"RCPT TO:<{mail.rcpt_to}>".encode())
                    if 200 <= rcpt_r[0] < 300:
                        data_r = await self._command(conn, item, b"DATA")
            need_rset = False
            for code, text in (mail_r, rcpt_r):
                if not 200 <= code < 300:
                    self._report(conn, item, code, text)
                    need_rset = True
                    break
            if need_rset:
                if data_r[0] == 354:  # a server that took DATA anyway gets an empty message
                    conn.write(b".\r\n")
                    await self._reply_for(conn, None)
                continue
            if data_r[0] != 354:
                self._report(conn, item, *data_r)
                need_rset = True
                continue
            tail = _stuffed(mail.data)
            tail_item = item
            await conn.drain()

    async def _command(self, conn: _Connection, item: _Item, line: bytes) -> tuple[int, str]:
        conn.write(line + b"\r\n")
        return await self._reply_for(conn, item)
