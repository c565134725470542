"""A resolver over dnspython: the system's name servers, or the ones a setting names.

Built lazily (dnspython imported and ``/etc/resolv.conf`` read at the first lookup), so a
process that never checks a domain never pays for either.  Answers are bounded: a hostile zone cannot hand the
check thousands of records or megabytes of text.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from lunamail.ports.dns import DnsUnavailable

MAX_RECORDS = 50  # per name and type: more than any sane zone publishes
MAX_TXT_CHARS = 8192  # per record (a DKIM RSA-4096 record is ~800)


def parse_server(spec: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` -> (host, port)."""
    text = spec.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 53


class DnspythonResolver:
    def __init__(self, servers: Sequence[str] = (), *, timeout: float = 5.0) -> None:
        self._servers = [parse_server(s) for s in servers if s.strip()]
        self._timeout = timeout
        self._resolver: Any = None  # a dns.resolver.Resolver once built
        self._lock = threading.Lock()

    def _get(self) -> Any:
        import dns.exception
        import dns.resolver

        with self._lock:
            if self._resolver is None:
                try:
                    r = dns.resolver.Resolver(configure=not self._servers)
                except dns.exception.DNSException as e:  # no resolv.conf: no DNS here
                    raise DnsUnavailable(f"no name server configured: {e}") from e
                if self._servers:
                    r.nameserver_ports = {host: port for host, port in self._servers}
                    try:
                        r.nameservers = [host for host, _ in self._servers]
                    except ValueError as e:  # dnspython takes addresses, not host names
                        raise DnsUnavailable(f"setting dns_servers: {e}") from e
                r.lifetime = self._timeout
                r.timeout = min(self._timeout, 2.0)
                r.use_edns(0, 0, 1232)  # a DKIM RSA-2048 record does not fit in 512 bytes
                self._resolver = r
            return self._resolver

    def _answer(self, name: str, rdtype: str) -> list[Any]:
        import dns.exception
        import dns.resolver

        try:
            answer = self._get().resolve(name.rstrip(".") + ".", rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as e:
            raise DnsUnavailable(f"no DNS answer for {name}: {e}") from e
        return list(answer)[:MAX_RECORDS]

    def txt(self, name: str) -> list[str]:
        out = []
        for rdata in self._answer(name, "TXT"):
            raw = b"".join(getattr(rdata, "strings", ()))[:MAX_TXT_CHARS]
            out.append(raw.decode("utf-8", "replace"))
        return out

    def mx(self, name: str) -> list[tuple[int, str]]:
        out = []
        for rdata in self._answer(name, "MX"):
            host = str(rdata.exchange.to_text(omit_final_dot=True)).lower()
            out.append((int(rdata.preference), host))
        return sorted(out)

    def __repr__(self) -> str:
        servers = ", ".join(f"{h}:{p}" for h, p in self._servers) or "system"
        return f"DnspythonResolver({servers})"
