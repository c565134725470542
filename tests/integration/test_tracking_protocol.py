"""The tracking protocol over real sockets: uvicorn on a free port of 127.0.0.1 with
``Config(http=tracking_protocol(...))``, next to the same app served the ASGI way as the
reference.  Raw HTTP/1.1 so pipelining, hand-off and closing are under the test's control."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from lunamail.domain.messages import Later, Message
from lunamail.domain.tracking import Clicked, Opened
from lunamail.entrypoints.http.routes_tracking import TrackingFront, create_tracking_app
from lunamail.entrypoints.http.tracking_protocol import tracking_protocol
from tests.support.motoserver import free_port

from .test_tracking_fixtures import CHROME, EMAIL, Tracking, make_tracking, path_of

APPLE_PROXY = "Mozilla/5.0"


@dataclass
class Served:
    port: int
    published: list[Message] = field(default_factory=list)
    fail: list[bool] = field(default_factory=lambda: [False])


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test thread owns no signals
        pass


@dataclass
class Pair:
    tr: Tracking
    fast: Served
    asgi: Served


def _serve(tr: Tracking, protocol: bool, stack: list[Callable[[], None]]) -> Served:
    served = Served(free_port())

    def publish(messages: Sequence[Message | Later]) -> None:
        if served.fail[0]:
            raise RuntimeError("queue unavailable")
        served.published.extend(m.message if isinstance(m, Later) else m for m in messages)

    app = create_tracking_app(tr.deps, publish)
    config = uvicorn.Config(TrackingFront(app, state=app.state), host="127.0.0.1", port=served.port,
                            log_level="warning", lifespan="off", access_log=False,
                            timeout_keep_alive=1,
                            http=tracking_protocol(app.state) if protocol else "httptools")
    server = _Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    for _ in range(1000):  # bounded wait for the socket, not a timing assertion
        if server.started:
            break
        threading.Event().wait(0.01)
    assert server.started, "server did not start"

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "server did not stop"

    stack.append(stop)
    return served


@pytest.fixture()
def pair(tmp_path: Path) -> Iterator[Pair]:
    store, tr = make_tracking(tmp_path)
    tr.clock.advance(0)
    stops: list[Callable[[], None]] = []
    try:
        yield Pair(tr, _serve(tr, True, stops), _serve(tr, False, stops))
    finally:
        for stop in stops:
            stop()
        store.close()


def _request(path: str, *, method: str = "GET", agent: str = CHROME,
             extra: Sequence[str] = ()) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: track.example.com", f"User-Agent: {agent}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Conn:
    """One raw keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def read(self, head_only: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"connection closed mid-answer: {self.buf!r}"
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            assert self._fill(), "connection closed mid-body"
        body, self.buf = self.buf[:length], self.buf[length:]
        return Response(int(status_line.split(" ")[1]), headers, body)

    def closed(self) -> bool:
        """True when the server closed the connection (EOF with nothing more to read)."""
        return not self.buf and not self._fill()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _exchange(port: int, requests: Sequence[bytes], head_only: Sequence[bool] = ()) -> list[Response]:
    with Conn(port) as conn:
        out = []
        for i, req in enumerate(requests):
            conn.send(req)
            out.append(conn.read(head_only=bool(head_only and head_only[i])))
        return out


def _same(fast: Response, asgi: Response) -> None:
    assert fast.status == asgi.status
    assert fast.body == asgi.body
    ignore = {"date"}
    assert {k: v for k, v in fast.headers.items() if k not in ignore} == \
        {k: v for k, v in asgi.headers.items() if k not in ignore}


def _events(published: Sequence[Message]) -> list[tuple[Any, ...]]:
    return [(type(m).__name__, m.email, getattr(m, "url", None), m.machine, m.reason)  # type: ignore[attr-defined]
            for m in published]


def _cases(tr: Tracking) -> list[tuple[bytes, bool]]:
    links = tr.links()
    sent = tr.clock.now() - 3600
    pixel = path_of(links.pixel_url(EMAIL, sent))
    click = path_of(links.rewriter(EMAIL, sent)("https://example.com/offer?a=1&b=ü", 0))
    forged_pixel = pixel[:-8] + ("A" if pixel[-8] != "A" else "B") + pixel[-7:]
    forged_click = click[:-3] + ("A" if click[-3] != "A" else "B") + click[-2:]
    return [
        (_request(pixel), False),
        (_request(pixel, agent=APPLE_PROXY, extra=["X-Forwarded-For: 17.58.0.1"]), False),
        (_request(pixel, agent=APPLE_PROXY, extra=["X-Forwarded-For: 10.1.1.1, 17.58.0.1"]), False),
        (_request(pixel, agent="GoogleImageProxy"), False),
        (_request(pixel, extra=["Purpose: prefetch"]), False),
        (_request(pixel, method="HEAD"), True),
        (_request(pixel + "?utm=1"), False),
        (_request(forged_pixel), False),
        (_request(click), False),
        (_request(click, agent="curl/8.0"), False),
        (_request(click, method="HEAD"), True),
        (_request(forged_click), False),
        (_request("/c/" + "x" * 40), False),
        (_request(pixel, extra=["User-Agent: second"]), False),
        (_request(pixel, agent=""), False),
    ]


def test_answers_and_events_equal_the_asgi_path(pair: Pair) -> None:
    cases = _cases(pair.tr)
    requests = [r for r, _ in cases]
    heads = [h for _, h in cases]
    fast = _exchange(pair.fast.port, requests, heads)
    asgi = _exchange(pair.asgi.port, requests, heads)
    for got, want in zip(fast, asgi, strict=True):
        _same(got, want)
    assert {r.status for r in fast} == {200, 302, 404}
    assert _events(pair.fast.published) == _events(pair.asgi.published)
    kinds = [type(m) for m in pair.fast.published]
    assert kinds.count(Opened) == 9 and kinds.count(Clicked) == 3  # forged ones count nothing
    reasons = {m.reason for m in pair.fast.published}  # type: ignore[attr-defined]
    assert {"apple-mail-privacy", "gmail-image-proxy", "prefetch", "head-request",
            "http-library", "empty-user-agent", ""} <= reasons


def test_pipelined_requests_are_answered_in_order(pair: Pair) -> None:
    cases = _cases(pair.tr)
    with Conn(pair.fast.port) as conn:
        conn.send(b"".join(r for r, _ in cases))  # all at once
        got = [conn.read(head_only=h) for _, h in cases]
    want = _exchange(pair.asgi.port, [r for r, _ in cases], [h for _, h in cases])
    for g, w in zip(got, want, strict=True):
        _same(g, w)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_requests_split_anywhere_are_still_read(pair: Pair, chunk: int) -> None:
    req, _ = _cases(pair.tr)[0]
    with Conn(pair.fast.port) as conn:
        data = req * 3
        for i in range(0, len(data), chunk):
            conn.send(data[i:i + chunk])
        assert [conn.read().status for _ in range(3)] == [200, 200, 200]
    assert len(pair.fast.published) == 3


def test_other_requests_are_handed_to_uvicorn_on_the_same_connection(pair: Pair) -> None:
    pixel, _ = _cases(pair.tr)[0]
    with Conn(pair.fast.port) as conn:
        conn.send(pixel)
        assert conn.read().status == 200
        conn.send(_request("/health"))  # not tracking: uvicorn and FastAPI from here on
        health = conn.read()
        assert health.status == 200 and health.body == b'{"status":"ok"}'
        conn.send(pixel + _request("/health"))  # pipelined across the hand-off
        assert conn.read().status == 200
        assert conn.read().status == 200
    assert len(pair.fast.published) == 2


def test_pipelined_hand_off_waits_for_the_answers_before_it(pair: Pair) -> None:
    pixel, _ = _cases(pair.tr)[0]
    with Conn(pair.fast.port) as conn:
        conn.send(pixel + pixel + _request("/health") + pixel)
        statuses = [conn.read() for _ in range(4)]
    assert [r.headers.get("content-type") for r in statuses] == \
        ["image/gif", "image/gif", "application/json", "image/gif"]


@pytest.mark.parametrize("request_bytes", [
    b"POST /o/abc.gif HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"GET /o/abc.gif HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /o/abc.gif HTTP/1.0\r\nHost: x\r\n\r\n",
    b"GET /o/a%62c.gif HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /o/abc.gif HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /o/abc.gif HTTP/1.1\nHost: x\n\n",
])
def test_anything_unusual_gets_uvicorns_answer(pair: Pair, request_bytes: bytes) -> None:
    def answer(port: int) -> tuple[int, bytes]:
        with Conn(port) as conn:
            conn.send(request_bytes)
            got = conn.read()
            return got.status, got.body

    assert answer(pair.fast.port) == answer(pair.asgi.port)


def test_a_malformed_request_is_a_400_from_uvicorn(pair: Pair) -> None:
    with Conn(pair.fast.port) as conn:
        conn.send(b"GET /o/abc.gif HTTP/1.1\r\nHost x\r\n\r\n")
        assert conn.read().status == 400
        assert conn.closed()


def test_connection_close_is_honoured(pair: Pair) -> None:
    pixel, _ = _cases(pair.tr)[0]
    with Conn(pair.fast.port) as conn:
        conn.send(pixel[:-2] + b"Connection: close\r\n\r\n" + pixel)
        got = conn.read()
        assert got.status == 200 and got.headers["connection"] == "close"
        assert conn.closed()  # the second request is never read
    assert len(pair.fast.published) == 1


def test_a_half_closed_connection_still_gets_its_answers(pair: Pair) -> None:
    pixel, _ = _cases(pair.tr)[0]
    with Conn(pair.fast.port) as conn:
        conn.send(pixel + pixel)
        conn.sock.shutdown(socket.SHUT_WR)  # nothing more from this client
        assert [conn.read().status, conn.read().status] == [200, 200]
        assert conn.closed()
    assert len(pair.fast.published) == 2


def test_a_failed_publish_is_a_500_and_counts_nothing(pair: Pair) -> None:
    pixel, _ = _cases(pair.tr)[0]
    pair.fast.fail[0] = True
    with Conn(pair.fast.port) as conn:
        conn.send(pixel)
        got = conn.read()
        assert got.status == 500 and got.body == b"Internal Server Error"
        pair.fast.fail[0] = False
        conn.send(pixel)  # the connection is still usable
        assert conn.read().status == 200
    assert len(pair.fast.published) == 1


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(pair: Pair) -> None:
    pixel, _ = _cases(pair.tr)[0]
    with Conn(pair.fast.port) as conn:
        conn.send(pixel)
        assert conn.read().status == 200
        assert conn.closed()  # blocks until the server closes it (timeout_keep_alive=1)


def test_the_protocol_needs_the_apps_context() -> None:
    with pytest.raises(TypeError):
        tracking_protocol(object())
