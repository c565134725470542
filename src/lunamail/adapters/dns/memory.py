"""A resolver over a fixed zone held in memory: what tests hand the domain check."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lunamail.ports.dns import DnsUnavailable


def _name(name: str) -> str:
    return name.strip().rstrip(".").lower()


class MemoryResolver:
    """``txt`` maps a name to its TXT values, ``mx`` to its ``(preference, host)`` pairs.
    ``unavailable`` makes every lookup fail as a resolver without network does."""

    def __init__(
        self,
        txt: Mapping[str, Iterable[str]] | None = None,
        mx: Mapping[str, Iterable[tuple[int, str]]] | None = None,
        *,
        unavailable: bool = False,
    ) -> None:
        self._txt: dict[str, list[str]] = {}
        self._mx: dict[str, list[tuple[int, str]]] = {}
        self.unavailable = unavailable
        for name, values in (txt or {}).items():
            for value in values:
                self.add_txt(name, value)
        for name, pairs in (mx or {}).items():
            for pref, host in pairs:
                self.add_mx(name, pref, host)

    def add_txt(self, name: str, value: str) -> None:
        self._txt.setdefault(_name(name), []).append(value)

    def add_mx(self, name: str, preference: int, host: str) -> None:
        self._mx.setdefault(_name(name), []).append((int(preference), _name(host)))

    def remove(self, name: str) -> None:
        self._txt.pop(_name(name), None)
        self._mx.pop(_name(name), None)

    def txt(self, name: str) -> list[str]:
        if self.unavailable:
            raise DnsUnavailable(f"no DNS answer for {name}")
        return list(self._txt.get(_name(name), ()))

    def mx(self, name: str) -> list[tuple[int, str]]:
        if self.unavailable:
            raise DnsUnavailable(f"no DNS answer for {name}")
        return sorted(self._mx.get(_name(name), ()))
