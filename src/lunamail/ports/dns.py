"""Resolver: the DNS answers ``domains check`` compares with the records it asked for.

Shaped after what a sending-domain check needs (TXT and MX of one name), so a test can
hand the use case a fixed zone and the real adapter can ask any name server.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class DnsUnavailable(Exception):
    """No answer could be had (no network, a timeout, a server failure): says nothing
    about whether the record exists."""


@runtime_checkable
class Resolver(Protocol):
    def txt(self, name: str) -> list[str]:
        """The TXT records at ``name``, each with its strings joined (as DKIM and SPF read
        them); ``[]`` when the name or the type does not exist.  DnsUnavailable otherwise."""
        ...

    def mx(self, name: str) -> list[tuple[int, str]]:
        """``(preference, host)`` of each MX record at ``name`` (host lower-case, without the
        final dot); ``[]`` when there is none.  DnsUnavailable otherwise."""
        ...
