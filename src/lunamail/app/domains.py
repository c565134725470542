"""Sending-domain use cases (like SES identities): add a domain with its DKIM keys and the
DNS records to publish, check those records against DNS, list and show them.

The pre-send check of every campaign door uses :func:`from_domain_check` too: a campaign's
From must be on one of its account's sending domains (or a parent of it), unless the
installation chose to send unsigned (the ``unsigned_sending`` setting), which then warns.
"""

from __future__ import annotations

from dataclasses import dataclass

from lunamail.domain.sending_domains import SendingDomain
from lunamail.lib.dkim import signing_domain
from lunamail.ports.dns import DnsUnavailable, Resolver
from lunamail.services.delivery import api as delivery_api

from .base import Actor, Emitted, Env, Page, Permission, command, query


class _NoDns:
    """What a process without a resolver answers: nothing, so every record is ``unknown``."""

    def txt(self, name: str) -> list[str]:
        raise DnsUnavailable("this process has no DNS resolver")

    def mx(self, name: str) -> list[tuple[int, str]]:
        raise DnsUnavailable("this process has no DNS resolver")


@command(Permission.ADMIN)
def add(env: Env, actor: Actor, domain: str, *, ed25519: bool = False) -> Emitted[SendingDomain]:
    """Add a sending domain: a new RSA-2048 DKIM key (plus ed25519 as a second signature
    when asked), sealed under the master key; the answer lists the records to publish.
    Adding it again changes nothing (``created`` is then False) but a missing ed25519 key."""
    return Emitted(delivery_api.add_domain(env.deps, actor.account, domain, ed25519=ed25519))


@command(Permission.ADMIN)
def check(env: Env, actor: Actor, domain: str) -> Emitted[SendingDomain]:
    """Look the domain's records up in DNS and keep what was found: ``verified`` once every
    record is there, ``failing`` when a verified domain loses one; a lookup without an
    answer (no network) is ``unknown`` and changes no state."""
    resolver: Resolver = env.deps.resolver or _NoDns()
    return Emitted(delivery_api.check_domain(env.deps, actor.account, domain, resolver))


@query()
def get(env: Env, actor: Actor, domain: str) -> SendingDomain:
    return delivery_api.get_domain(env.deps, actor.account, domain)


@query()
def list_domains(env: Env, actor: Actor, *, limit: int = 50, cursor: str | None = None) -> Page[SendingDomain]:
    """The account's sending domains in name order, with their state and records."""
    items, next_cursor = delivery_api.list_domains(env.deps, actor.account, limit=limit, cursor=cursor)
    return Page(items, next_cursor)


@dataclass(frozen=True)
class FromDomainCheck:
    problems: tuple[str, ...] = ()  # refuse the send
    warnings: tuple[str, ...] = ()  # what the send costs


def from_domain_check(env: Env, account: str, from_email: str) -> FromDomainCheck:
    """Whether mail From ``from_email`` may go out for ``account``, each reason with its fix.
    A key of the ``dkim`` setting (the installation's own) covers its domain for every account."""
    domain = from_email.strip().rpartition("@")[2].lower().rstrip(">").strip()
    if not domain:
        return FromDomainCheck()  # no From at all: the campaign's own checks say so
    found = delivery_api.covering_domain(env.deps, account, domain)
    if found is not None:
        if found.state == "verified":
            return FromDomainCheck()
        failing = ", ".join(f"{r.purpose} {r.name}" for r in found.failing_records)
        why = f"its DNS records are failing ({failing})" if found.state == "failing" else (
            f"its DNS records are not verified yet{f' ({failing} not found)' if failing else ''}")
        return FromDomainCheck(warnings=(
            f"the sending domain {found.domain} is {found.state}: {why}; publish them and run "
            f"`lunamail domains check {found.domain}` (receivers may distrust the mail until then)",))
    if signing_domain((k.domain for k in env.deps.settings.dkim), domain) is not None:
        return FromDomainCheck()
    if env.deps.settings.unsigned_sending:
        return FromDomainCheck(warnings=(
            f"{domain} is not a sending domain of this account: messages go out unsigned (unsigned_sending "
            f"is on), so receivers distrust them and do not offer one-click unsubscribe; run "
            f"`lunamail domains add {domain}` and publish its records",))
    return FromDomainCheck(problems=(
        f"the From domain {domain} is not a sending domain of this account: run "
        f"`lunamail domains add {domain}` and publish the records it prints",))


__all__ = ["FromDomainCheck", "add", "check", "from_domain_check", "get", "list_domains"]
