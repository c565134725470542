"""Forged tracking tokens: a flood of 100,000 forged pixels and clicks (each naming a new
account, so any per-account cache filled before the MAC check would grow) leaves the server's
RSS within 20 MB of where it started, every pixel still gets its GIF and every forged click
the 404 page; and the token decoders never raise on any input (bounded fuzzing)."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lunamail.lib import tokens, tracklinks
from tests.hostile import sheet
from tests.hostile.server import HOST, Served

FLOOD = 100_000
CONNECTIONS = 8
PIPELINE = 250


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(i: int) -> str:
    """A well-formed token for a new account each time, with a MAC that cannot match."""
    payload = f"acct-{i:x}-{os.urandom(6).hex()}\x1f0\x1fo\x1fcamp\x1fx@example.org\x1f1700000000".encode()
    return f"{_b64(payload)}.{_b64(os.urandom(16))}"


def _requests(start: int, count: int) -> bytes:
    out = []
    for i in range(start, start + count):
        if i % 10 == 9:
            out.append(f"GET /c/{_forged(i)} HTTP/1.1\r\nHost: t\r\nUser-Agent: Mozilla/5.0 Firefox/120\r\n\r\n")
        else:
            out.append(f"GET /o/{_forged(i)}.gif HTTP/1.1\r\nHost: t\r\nUser-Agent: Mozilla/5.0 Firefox/120\r\n\r\n")
    return "".join(out).encode()


async def _flood(port: int, total: int) -> dict[bytes, int]:
    statuses: dict[bytes, int] = {}
    per_connection = total // CONNECTIONS

    async def one(n: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        done = 0
        while done < per_connection:
            batch = min(PIPELINE, per_connection - done)
            writer.write(_requests(n * per_connection + done, batch))
            seen = 0
            buf = b""
            while seen < batch:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                buf += chunk
                while True:
                    head_end = buf.find(b"\r\n\r\n")
                    if head_end < 0:
                        break
                    head = buf[:head_end]
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    if len(buf) < head_end + 4 + length:
                        break
                    status = head[9:12]
                    statuses[status] = statuses.get(status, 0) + 1
                    buf = buf[head_end + 4 + length:]
                    seen += 1
            done += batch
        writer.close()

    await asyncio.gather(*(one(n) for n in range(CONNECTIONS)))
    return statuses


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with Served(tmp_path_factory.mktemp("hostile-tokens") / "data") as s:
        yield s


def test_a_flood_of_forged_tokens_leaves_memory_where_it_was(served: Served) -> None:
    asyncio.run(_flood(served.port, 4000))  # warm up: imports, allocator pools, first caches
    rss0 = served.rss_mb()
    t0 = time.monotonic()
    statuses = asyncio.run(_flood(served.port, FLOOD))
    grew = served.rss_mb() - rss0
    alive = served.alive_within(1.0)
    pixels = FLOOD - FLOOD // 10
    ok = statuses.get(b"200", 0) == pixels and statuses.get(b"404", 0) == FLOOD - pixels
    sheet.record("tokens", "100,000 forged pixels and clicks", FLOOD,
                 sum(statuses.values()) if ok else 0, int(not ok) + int(grew > 20) + int(not alive))
    print(f"forged flood: {FLOOD:,} requests in {time.monotonic() - t0:.1f} s, RSS {rss0:.0f} MB -> "
          f"{rss0 + grew:.0f} MB, statuses {statuses}")
    assert ok, statuses
    assert grew < 20, f"RSS grew {grew:.1f} MB"
    assert alive


_TEXT = st.text(max_size=300) | st.builds(
    lambda a, b: f"{a}.{b}", st.text("ABCDEFabcdef0123456789-_=", max_size=80),
    st.text("ABCDEFabcdef0123456789-_=.", max_size=40))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token=_TEXT, payload=st.binary(max_size=120))
def test_the_token_decoders_never_raise(token: str, payload: bytes) -> None:
    key = b"k" * 32
    crafted = f"{_b64(payload)}.{_b64(payload[:16])}"
    for t in (token, crafted):
        # nothing unsigned by the key is ever read as a token (a MAC forgery is 2^-128)
        assert tokens.read_token(lambda _a: key, t, now=1.0) is None
        assert tracklinks.read_open(lambda _a: key, t, now=1.0) is None
        assert tracklinks.read_click(lambda _a: key, t, now=1.0) is None
