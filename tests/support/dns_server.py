"""A tiny authoritative DNS server on 127.0.0.1 (UDP, a free port) answering from a
``MemoryResolver``'s zone, so the real dnspython adapter and ``lunamail domains check``
can be tested against real DNS packets without any network.  Stopped by whoever starts
it (a context manager)."""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from lunamail.adapters.dns.memory import MemoryResolver

_CHUNK = 255


def _txt_rdata(value: str) -> dns.rdata.Rdata:
    data = value.encode()
    chunks = [data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)] or [b""]
    text = " ".join('"' + c.decode().replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text)


class ZoneServer:
    def __init__(self, zone: MemoryResolver) -> None:
        self.zone = zone
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="zone-server", daemon=True)
        self.queries = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True)
        txt, mx = self.zone.txt(name), self.zone.mx(name)
        if question.rdtype == dns.rdatatype.TXT and txt:
            rdatas = [_txt_rdata(v) for v in txt]
        elif question.rdtype == dns.rdatatype.MX and mx:
            rdatas = [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.MX, f"{p} {h}.") for p, h in mx]
        else:
            rdatas = []
            if not txt and not mx:
                response.set_rcode(dns.rcode.NXDOMAIN)
        if rdatas:
            response.answer.append(dns.rrset.from_rdata_list(question.name, 60, rdatas))
        return response.to_wire()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.queries += 1
            try:
                self._sock.sendto(self._answer(wire), peer)
            except Exception:  # a malformed query gets no answer, as from a real server
                continue

    def __enter__(self) -> ZoneServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
