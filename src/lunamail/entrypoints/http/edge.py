"""The public edge of ``lunamail serve``: uvicorn's httptools protocol with the limits it lacks.

uvicorn parses HTTP/1.1 (llhttp through httptools) and answers like every other
uvicorn deployment; what it does not bound, this subclass does, per connection:

* a *head timeout*: the request line and headers must arrive within
  ``head_timeout`` seconds of the connection (or of the first byte after a
  keep-alive pause); a half-open head (``GET /o/abc`` then silence, a TLS
  ClientHello, a slowloris trickle) is answered 408 and closed, and a silent
  connection is closed;
* a *head size cap*: more than ``max_head_bytes`` before the end of the headers is
  a 431 (llhttp itself would buffer a 300 MB header);
* a *body timeout*: a declared body must arrive within ``body_timeout`` seconds
  after the head (408);
* *body caps per route*: a ``Content-Length`` above the route's cap is a 413 before
  any of the body is read; a chunked body is counted as it arrives.  Signed
  uploads (``/uploads/``) have their own, larger cap;
* a *connection cap*: above ``max_connections`` open connections a new one gets a
  503 and is closed at once.

Every refusal has the API's error shape (``{"error": {"code", "message", "details"}}``)
and closes the connection.  Authentication before the body is the ASGI part:
:class:`BodyAfterAuth` answers 401 to a ``/v1`` request with a body and no valid key
without reading the body.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lunamail.app import accounts as account_cases
from lunamail.config import Settings

__all__ = ["BodyAfterAuth", "EdgeLimits", "edge_protocol", "limits_from"]

_REASONS = {
    400: b"Bad Request",
    401: b"Unauthorized",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    408: "request_timeout",
    413: "payload_too_large",
    431: "header_too_large",
    503: "unavailable",
}


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The bounds of one server (the ``edge_*`` and ``max_upload_bytes`` settings)."""

    head_timeout: float = 10.0
    body_timeout: float = 60.0
    max_head_bytes: int = 32 * 1024
    max_body_bytes: int = 1 << 20  # every route but the signed uploads
    max_upload_bytes: int = 1 << 30
    max_connections: int = 1000

    def body_cap(self, path: str) -> int:
        """The largest body a request to ``path`` may carry."""
        return self.max_upload_bytes if path.startswith("/uploads/") else self.max_body_bytes


def limits_from(settings: Settings) -> EdgeLimits:
    """Limits from settings: ``edge_head_timeout``, ``edge_body_timeout``, ``edge_max_head_bytes``,
    ``edge_max_body_bytes``, ``max_upload_bytes`` (shared with the upload route) and
    ``edge_max_connections``."""
    return EdgeLimits(
        head_timeout=settings.edge_head_timeout,
        body_timeout=settings.edge_body_timeout,
        max_head_bytes=settings.edge_max_head_bytes,
        max_body_bytes=settings.edge_max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        max_connections=settings.edge_max_connections,
    )


def refusal(status: int, message: str) -> bytes:
    """A complete ``Connection: close`` response with the API's error shape."""
    body = orjson.dumps({"error": {"code": _CODES[status], "message": message, "details": {}}})
    return b"".join((
        b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
        b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
        body,
    ))


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the head/body timeouts and the size and connection
    caps of :class:`EdgeLimits` (bound to a subclass by :func:`edge_protocol`)."""

    limits = EdgeLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # until the end of the current request's headers
        self._head_bytes = 0
        self._body_left: int | None = None  # bytes a chunked body may still bring
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False

    # -- timers
    def _arm(self, seconds: float, status: int, message: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired, status, message)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, status: int, message: str) -> None:
        self._timer = None
        idle = self._in_head and self._head_bytes == 0
        if idle:  # nothing of a request arrived: just close
            self._refused = True
            if not self.transport.is_closing():
                self.transport.close()
        else:
            self._refuse(status, message)

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` and close, unless the app has started its own response."""
        if self._refused:
            return
        self._refused = True
        self._disarm()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's later sends and receives see a disconnect
            cycle.message_event.set()
            if cycle.response_started:  # half a response is out: closing is all that is left
                self.transport.close()
                return
        if not self.transport.is_closing():
            self.transport.write(refusal(status, message))
            self.transport.close()

    # -- connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "too many open connections; try again shortly")
            return
        self._arm(self.limits.head_timeout, 408, "the request head did not arrive in time")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            if self._head_bytes == 0 and self._timer is None:  # first byte after keep-alive
                self._arm(self.limits.head_timeout, 408, "the request head did not arrive in time")
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.limits.max_head_bytes and not self._refused:
            self._refuse(431, f"the request head is larger than {self.limits.max_head_bytes} bytes")

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, msg)

    # -- parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._body_left = None

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._disarm()
        head = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if head > self.limits.max_head_bytes:  # it came in one read
            self._refuse(431, f"the request head is larger than {self.limits.max_head_bytes} bytes")
            return
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        cap = self.limits.body_cap(path)
        declared = _content_length(self.headers)
        chunked = any(n == b"transfer-encoding" for n, _ in self.headers)
        # /v1: BodyAfterAuth answers 401 before it answers 413 (a stranger learns nothing)
        if declared is not None and declared > cap and not path.startswith("/v1"):
            self._refuse(413, f"the request body is larger than {cap} bytes")
            return
        super().on_headers_complete()
        if chunked or (declared or 0) > 0:
            self._body_left = cap
            self._arm(self.limits.body_timeout, 408, "the request body did not arrive in time")

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        if self._body_left is not None:
            self._body_left -= len(body)
            if self._body_left < 0:
                self._refuse(413, "the request body is larger than this route accepts")
                return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._disarm()
        self._body_left = None
        # What arrives next is the next request's head; its first byte arms the head timer
        # (data_received), so a long response (a live report stream) is not timed.
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def edge_protocol(limits: EdgeLimits) -> type[EdgeProtocol]:
    """The protocol class to hand to ``uvicorn.Config(http=...)`` for these limits."""
    return type("BoundEdgeProtocol", (EdgeProtocol,), {"limits": limits})


class BodyAfterAuth:
    """ASGI middleware: a ``/v1`` request that carries a body is authenticated *before* its
    body is read, so a large body without a valid key costs nothing but its head (FastAPI
    reads and validates the body before it resolves the auth dependency).  The 401 closes
    the connection, as the body is still on the wire.  Requests without a body are left to
    the route's own auth dependency."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            headers = Headers(scope=scope)
            length = headers.get("content-length", "0")
            if "transfer-encoding" in headers or length not in ("", "0"):
                if not await self._authorised(scope, headers.get("authorization", "")):
                    await _close_with(send, 401, "unauthorized",
                                      "missing or invalid API key: send 'Authorization: Bearer <key>'",
                                      [(b"www-authenticate", b"Bearer")])
                    return
                cap = limits_from(scope["app"].state.lunamail.deps.settings).max_body_bytes
                if length.isdigit() and int(length) > cap:
                    await _close_with(send, 413, "payload_too_large",
                                      f"the request body is larger than {cap} bytes")
                    return
        await self.app(scope, receive, send)

    @staticmethod
    async def _authorised(scope: Scope, authorization: str) -> bool:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return False
        ctx = scope["app"].state.lunamail
        found = await run_in_threadpool(account_cases.actor_for_key, ctx.deps, key.strip())
        return found is not None


async def _close_with(send: Send, status: int, code: str, message: str,
                      extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """An error in the API's shape that closes the connection (the body is still unread)."""
    body = orjson.dumps({"error": {"code": code, "message": message, "details": {}}})
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
