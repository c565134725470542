"""Sending domains for tests: the one helper that gives an account the domain its
campaigns send From (the suite's From addresses are ``...@sender.example.org``), and a
resolver holding exactly the records ``domains add`` asked to publish."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any
from unittest import mock

from lunamail.adapters.dns.memory import MemoryResolver
from lunamail.domain.sending_domains import SendingDomain
from lunamail.lib.dkim import Algorithm, generate_keys
from lunamail.services.delivery import api as delivery_api
from lunamail.services.delivery import domains as delivery_domains

SENDER_DOMAIN = "sender.example.org"
ACCOUNT = "default"


@functools.cache
def _one_key(algorithm: Algorithm = "rsa-sha256") -> tuple[bytes, str]:
    """One RSA-2048 (or ed25519) key per test process: making a new one per fixture would
    cost a fraction of a second each, and which key signs is not what these tests test."""
    return generate_keys(algorithm)


def add_sending_domain(system: Any, account: str = ACCOUNT, domain: str = SENDER_DOMAIN, *,
                       ed25519: bool = False) -> SendingDomain:
    """Add ``domain`` to ``account`` (a System, an Env or bare Deps) as `domains add` does
    (sealed under the master key, with its records); its campaigns may then send From it,
    DKIM-signed.  The key is the process's one test key (see ``_one_key``)."""
    deps = getattr(system, "deps", system)
    with mock.patch.object(delivery_domains, "generate_keys", _one_key):
        return delivery_api.add_domain(deps, account, domain, ed25519=ed25519)


def add_sending_domains(system: Any, accounts: Iterable[str], domains: Iterable[str]) -> None:
    """Every one of ``domains`` for every one of ``accounts`` (a fixture's whole cast)."""
    names = list(domains)
    for account in accounts:
        for domain in names:
            add_sending_domain(system, account, domain)


def published(*domains: SendingDomain) -> MemoryResolver:
    """A resolver whose zone holds every record the domains asked for."""
    resolver = MemoryResolver()
    for d in domains:
        for r in d.records:
            if r.type == "MX":
                pref, _, host = r.value.partition(" ")
                resolver.add_mx(r.name, int(pref), host)
            else:
                resolver.add_txt(r.name, r.value)
    return resolver


def dkimpy_dns(*domains: SendingDomain) -> Any:
    """dkimpy's ``dnsfunc`` over the DKIM records the domains asked to publish."""
    zone = {f"{r.name}.".encode(): r.value.encode() for d in domains for r in d.records if r.purpose == "dkim"}

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return zone.get(name)

    return dnsfunc
