"""The Resolver contract on both adapters: in memory, and dnspython asking a real DNS
server (a local one serving the zone over UDP)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from lunamail.adapters.dns.dnspython import DnspythonResolver
from lunamail.adapters.dns.memory import MemoryResolver
from lunamail.ports.dns import Resolver
from tests.support.dns_server import ZoneServer

from .dns_contract import Make, ResolverContract


class TestMemoryResolver(ResolverContract):
    @pytest.fixture
    def make(self) -> Make:
        return lambda zone: zone

    @pytest.fixture
    def unreachable(self) -> Resolver:
        return MemoryResolver(unavailable=True)


class TestDnspythonResolver(ResolverContract):
    @pytest.fixture
    def make(self) -> Iterator[Make]:
        servers: list[ZoneServer] = []

        def make(zone: MemoryResolver) -> Resolver:
            server = ZoneServer(zone).__enter__()
            servers.append(server)
            return DnspythonResolver([server.address], timeout=10.0)

        yield make
        for server in servers:
            server.__exit__(None, None, None)

    @pytest.fixture
    def unreachable(self) -> Iterator[Resolver]:
        # a UDP port nobody answers on: bound here, never read
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            yield DnspythonResolver([f"127.0.0.1:{sock.getsockname()[1]}"], timeout=0.5)
