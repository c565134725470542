"""The tracking hot path below ASGI: an HTTP/1.1 connection protocol for ``lunamail serve``
that answers pixel and click requests itself and gives every other connection to uvicorn.

Why: after a send, opens and clicks arrive by the thousand per second and each is a tiny
GET.  Through uvicorn and ASGI each pays a task, a scope and receive/send events; this
path parses the head with httptools and writes prebuilt bytes.  Measured per event, group
commit included: ~141 µs of server CPU through ASGI, ~104 this way, and ~6,400 → ~8,000
events/s into the reports (docs/benchmarks.md).

How it stays safe and equal to the ASGI routes:

* It takes only requests it can answer without doubt: ``GET``/``HEAD`` over HTTP/1.1, a
  pixel or click path (:func:`routes_tracking.tracking_answerer`), no body, no upgrade, no
  ``Expect``, CRLF line ends, a head of at most 8 KiB, parsed by httptools.  At the first
  request that is anything else the connection is handed, from that request's first byte,
  to uvicorn's own protocol (after every earlier answer was written), which then serves it
  for good: the API, pages, errors and odd clients all meet the full stack.
* The answer and the event come from the same functions as the routes
  (:func:`routes_tracking.answer_open` / ``answer_click``), the client address from the same
  proxy-header rule as uvicorn's (``forwarded_allow_ips``), and the event goes through the
  same :class:`routes_tracking.GroupCommit`: a request is answered only once its event is
  durable; a failed write answers 500.
* Pipelined requests are answered in order; reading pauses while 32 answers are pending or
  the client does not read; an idle connection closes after uvicorn's keep-alive timeout;
  the server's graceful shutdown closes it once its answers are written.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, cast

import httptools
from starlette.datastructures import Headers
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.server import ServerState

from lunamail.entrypoints.http.context import ApiContext
from lunamail.entrypoints.http.routes_tracking import (
    Answer,
    committer_of,
    tracking_answerer,
)
from lunamail.lib import bots
from lunamail.services.tracking import api as tracking

log = logging.getLogger("lunamail.tracking")

MAX_HEAD = 8192  # a longer head is not a tracking request we want to parse here
MAX_PENDING = 32  # answers awaiting their write before reading pauses
_REASONS = {200: b"OK", 302: b"Found", 404: b"Not Found", 500: b"Internal Server Error"}
_ERROR_BODY = b"Internal Server Error"
_CLOSE = (b"connection", b"close")


class _Head:
    """httptools callbacks for one request head: the URL, the headers (names lower-case),
    and what the parser knows at the end of the head (read then: after the message it has
    moved on)."""

    __slots__ = ("complete", "headers", "keep_alive", "method", "parser", "plain", "url")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.reset()

    def reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = self.keep_alive = self.plain = False
        self.method = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        self.method = parser.get_method()
        self.keep_alive = parser.should_keep_alive()
        self.plain = parser.get_http_version() == "1.1" and not parser.should_upgrade()

    def on_message_complete(self) -> None:
        self.complete = True


# Headers that mean the request is more than a plain GET/HEAD: uvicorn serves those.
_NOT_PLAIN = frozenset({b"content-length", b"transfer-encoding", b"expect", b"upgrade"})
# The classifier reads only these besides the User-Agent (and the address).
_HINTS = frozenset(name.encode() for name in bots.PREFETCH_HEADERS)
_NO_HEADERS: dict[str, str] = {}


class _Request:
    """One taken request: its answer, once known, and whether the connection ends with it."""

    __slots__ = ("close", "data", "head_only")

    def __init__(self, head_only: bool, close: bool) -> None:
        self.head_only = head_only
        self.close = close
        self.data: bytes | None = None


class TrackingProtocol(asyncio.Protocol):
    """One connection.  uvicorn makes it with the keyword arguments it gives every HTTP
    protocol class; ``state`` (the app's state, holding the :class:`ApiContext`) is set on
    the class by :func:`tracking_protocol`."""

    state: Any = None

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.trusted = (ProxyHeadersMiddleware(None,  # type: ignore[arg-type]
                                               trusted_hosts=config.forwarded_allow_ips).trusted_hosts
                        if config.proxy_headers else None)
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.buffer = b""  # received, not yet taken
        self.head: _Head | None = None  # the connection's parser, made on its first request
        self.answers: deque[_Request] = deque()
        self.reading_paused = False
        self.writing_paused = False
        self.handing_off = False
        self.closing = False
        self.idle_since = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self.server_state.connections.add(self)  # type: ignore[arg-type]  # uvicorn's shutdown reaches it
        self.idle_since = self.loop.time()
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)  # type: ignore[arg-type]
        self.closing = True
        self.answers.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: finish the answers owed, then close."""
        self.closing = True
        if not self.answers and self.transport is not None:
            self.transport.close()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if len(self.answers) < MAX_PENDING and not self.handing_off:
            self._resume_reading()

    def eof_received(self) -> bool | None:
        """The client sent all it will (a half-close): answer what was asked, then close."""
        self.closing = True
        return True if self.answers else None  # True keeps the transport open for them

    # ------------------------------------------------------------------ reading

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.buffer = self.buffer + data if self.buffer else data
        self._take_requests()

    def _take_requests(self) -> None:
        data, at = self.buffer, 0
        while at < len(data) and not self.handing_off and not self.closing:
            if len(self.answers) >= MAX_PENDING or self.writing_paused:
                self._pause_reading()
                break
            end = data.find(b"\r\n\r\n", at, at + MAX_HEAD + 4)
            if end < 0:
                # too long, or bare line ends (a head that CRLFCRLF would never end): uvicorn's
                if len(data) - at > MAX_HEAD or data.count(b"\n", at) != data.count(b"\r\n", at):
                    self.buffer = data[at:]
                    self._hand_off()
                    return
                break
            if not self._take(data[at:end + 4]):  # the whole of data, uncopied, most of the time
                self.buffer = data[at:]
                self._hand_off()
                return
            at = end + 4
        self.buffer = data[at:] if at else data
        self.idle_since = self.loop.time()

    def _take(self, head: bytes) -> bool:
        """Answer ``head`` (one whole request head, CRLFCRLF included) if it is a tracking
        request this path may take; False leaves it, unread, for uvicorn."""
        if not head.startswith((b"GET /", b"HEAD /")) \
                or not head.count(b"\r") == head.count(b"\n") == head.count(b"\r\n"):
            return False  # bare CR or LF: not for this path
        found = self.head
        if found is None:
            found = self.head = _Head()
        found.reset()
        try:
            found.parser.feed_data(head)
        except httptools.HttpParserError:
            self.head = None  # uvicorn parses it afresh (and answers 400)
            return False
        if not (found.complete and found.plain):
            self.head = None  # maybe mid-message: of no further use
            return False
        path, _, _ = found.url.partition(b"?")
        if b"%" in path or b"#" in path or not path.isascii():
            return False
        route = tracking_answerer(path.decode("ascii", "replace"))
        if route is None:
            return False
        forwarded: list[bytes] = []
        hints: list[tuple[bytes, bytes]] = []
        agent = None
        for name, value in found.headers:
            if name in _NOT_PLAIN:
                return False
            if name == b"user-agent":
                if agent is None:
                    agent = value
            elif name == b"x-forwarded-for":
                forwarded.append(value)
            elif name in _HINTS:
                hints.append((name, value))
        self._answer(route, found.method, agent or b"", forwarded, hints, not found.keep_alive)
        return True

    # ------------------------------------------------------------------ answering

    def _answer(self, route: Any, method: bytes, agent: bytes, forwarded: list[bytes],
                hints: list[tuple[bytes, bytes]], close: bool) -> None:
        answer, token = route
        ip = self.client
        if forwarded and self.trusted is not None and ip in self.trusted:
            host, _ = self.trusted.get_trusted_client_address(b", ".join(forwarded).decode("latin-1"))
            if host:
                ip = host
        hit = tracking.Hit(method=method.decode("ascii"), user_agent=agent.decode("latin-1"),
                           ip=ip, headers=Headers(raw=hints) if hints else _NO_HEADERS)
        request = _Request(method == b"HEAD", close)
        self.answers.append(request)
        if close:
            self.closing = True  # read nothing more on this connection
        ctx, commit = committer_of(self.state)
        try:
            found = answer(ctx, token, hit)
        except Exception:
            log.exception("tracking: answering %s failed", method.decode("ascii"))
            self._finish(request, _error(request))
            return
        if found.event is None:
            self._finish(request, self._bytes(request, found))
        else:
            commit.submit(found.event, lambda exc: self._published(request, found, exc))

    def _published(self, request: _Request, found: Answer, exc: BaseException | None) -> None:
        if exc is not None:
            log.error("tracking: publishing the event failed: %s", exc)
            self._finish(request, _error(request))
        else:
            self._finish(request, self._bytes(request, found))

    def _bytes(self, request: _Request, found: Answer) -> bytes:
        parts = [b"HTTP/1.1 %d %s\r\n" % (found.status, _REASONS.get(found.status, b""))]
        for name, value in self.server_state.default_headers:
            parts += (name, b": ", value, b"\r\n")
        for name, value in found.raw_headers:
            parts += (name, b": ", value, b"\r\n")
        if request.close:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if not request.head_only:
            parts.append(found.body)
        return b"".join(parts)

    def _finish(self, request: _Request, data: bytes) -> None:
        request.data = data
        answers, transport = self.answers, self.transport
        if transport is None or transport.is_closing():
            return
        while answers and answers[0].data is not None:
            done = answers.popleft()
            transport.write(done.data)  # type: ignore[arg-type]
            if done.close:
                answers.clear()
                transport.close()
                return
        if answers:
            return
        if self.closing:
            transport.close()
        elif self.handing_off:
            self._give_to_uvicorn()
        elif self.reading_paused and not self.writing_paused:
            self._resume_reading()
            self._take_requests()

    # ------------------------------------------------------------------ the rest

    def _hand_off(self) -> None:
        self.handing_off = True
        self._pause_reading()
        if not self.answers:
            self._give_to_uvicorn()

    def _give_to_uvicorn(self) -> None:
        """From here on uvicorn's protocol owns the connection, starting with the unread bytes."""
        transport = self.transport
        assert transport is not None
        self.server_state.connections.discard(self)  # type: ignore[arg-type]
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        successor = AutoHTTPProtocol(config=self.config, server_state=self.server_state,  # type: ignore[call-arg]
                                     app_state=self.app_state, _loop=self.loop)
        successor.connection_made(transport)
        transport.set_protocol(successor)
        self.reading_paused = False
        transport.resume_reading()
        data, self.buffer = self.buffer, b""
        if data:
            successor.data_received(data)

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def _arm_timer(self) -> None:
        self.timer = self.loop.call_at(self.idle_since + self.config.timeout_keep_alive, self._idle)

    def _idle(self) -> None:
        """Close a connection idle for the keep-alive timeout (one timer per connection,
        moved along lazily, not one per request)."""
        self.timer = None
        if self.transport is None or self.transport.is_closing() or self.handing_off:
            return
        if not self.answers and not self.buffer \
                and self.loop.time() - self.idle_since >= self.config.timeout_keep_alive:
            self.transport.close()
            return
        if self.answers:
            self.idle_since = self.loop.time()
        self._arm_timer()


def _error(request: _Request) -> bytes:
    head = (b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\n" % len(_ERROR_BODY))
    if request.close:
        head += b"connection: close\r\n"
    return head + b"\r\n" + (b"" if request.head_only else _ERROR_BODY)


def tracking_protocol(state: Any) -> type[TrackingProtocol]:
    """The protocol class to give uvicorn (``Config(http=...)``) for an app whose state holds
    its :class:`ApiContext` (``state.lunamail``)."""
    if not isinstance(getattr(state, "lunamail", None), ApiContext):
        raise TypeError("state must hold the app's ApiContext as .lunamail")
    return type("BoundTrackingProtocol", (TrackingProtocol,), {"state": state})


__all__ = ["TrackingProtocol", "tracking_protocol"]
