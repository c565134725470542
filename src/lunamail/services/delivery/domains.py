"""An account's sending domains: their DKIM keys (sealed under the master key), the DNS
records to publish, the checks of those records, and the signers the hot path uses.

Delivery owns them because delivery signs: a batch reads its campaign's key from its own
items, never from another service's.  One item per domain (``A#{account}#D#~DOMAINS`` /
``DOM#{domain}``; ``~`` is not allowed in campaign ids, so no campaign's items clash).
"""

from __future__ import annotations

import ipaddress
import secrets as _secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from lunamail.config import Settings
from lunamail.domain.sending_domains import (
    DkimKeyInfo,
    DnsRecord,
    RecordPlan,
    RecordStatus,
    SendingDomain,
    judge_dkim,
    judge_dmarc,
    judge_mx,
    judge_spf,
    records_for,
    state_after,
    with_statuses,
)
from lunamail.lib import emails, sealing
from lunamail.lib.dkim import Algorithm, DkimSigner, generate_keys
from lunamail.ports.deps import Deps
from lunamail.ports.dns import DnsUnavailable, Resolver
from lunamail.ports.itemstore import IF_ABSENT, ConditionFailed, Item

from .errors import InvalidInput, NotFound

SEAL_PURPOSE = "dkim-key"  # the Secrets purpose whose key seals DKIM private keys
MAX_DOMAINS_PAGE = 100


def domains_pk(account: str) -> str:
    return f"A#{account}#D#~DOMAINS"


def domain_sk(domain: str) -> str:
    return f"DOM#{domain}"


def normalise(raw: str) -> str:
    """A domain as stored (lower-case, punycode, no final dot), or InvalidInput saying why."""
    text = (raw or "").strip().rstrip(".")
    if not text:
        raise InvalidInput("invalid domain", {"domain": "give a domain, e.g. example.com"})
    if "@" in text or "/" in text or " " in text:
        raise InvalidInput("invalid domain", {"domain": f"{raw[:80]!r} is not a domain name"})
    address, why = emails.check(f"postmaster@{text}")
    if address is None:
        raise InvalidInput("invalid domain", {"domain": f"{raw[:80]!r}: {why}"})
    return address.rpartition("@")[2]


def _bound_to(account: str, domain: str, selector: str) -> str:
    return f"{account}\x00{domain}\x00{selector}"


def _new_key(deps: Deps, account: str, domain: str, selector: str, algorithm: Algorithm) -> dict[str, Any]:
    pem, record = generate_keys(algorithm)
    sealed = sealing.seal(deps.secrets.key(account, SEAL_PURPOSE), pem, _bound_to(account, domain, selector))
    return {"selector": selector, "algorithm": algorithm, "record": record, "sealed": sealed}


def spf_mechanism(settings: Settings) -> str:
    """The SPF term that authorises the relay: the setting, SES's include, or the relay's
    address or name from the SMTP URL."""
    if settings.spf_include.strip():
        return settings.spf_include.strip()
    if settings.mailer == "ses" or settings.platform == "aws" or settings.smtp_url.startswith("ses://"):
        return "include:amazonses.com"
    host = (urlsplit(settings.smtp_url).hostname or "").strip()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"a:{host}" if host else "mx"
    return f"ip{ip.version}:{ip}"


def plan(settings: Settings) -> RecordPlan:
    return RecordPlan(return_path_domain=settings.bounce_domain.strip().lower() or None,
                      spf_mechanism=spf_mechanism(settings), inbound_mx=settings.inbound_mx.strip().lower())


def _view(settings: Settings, item: Item, *, created: bool = False) -> SendingDomain:
    keys = tuple(DkimKeyInfo(k["selector"], k["algorithm"], k["record"]) for k in item.get("keys") or [])
    p = plan(settings)
    records = with_statuses(records_for(item["domain"], keys, p), item.get("checks") or {})
    return SendingDomain(
        account=str(item["account"]), domain=str(item["domain"]), state=item.get("state", "pending"),
        keys=keys, records=records, return_path_domain=p.return_path_domain or str(item["domain"]),
        created_at=float(item["created_at"]), checked_at=item.get("checked_at"),
        verified_at=item.get("verified_at"), created=created,
    )


def add(deps: Deps, account: str, raw_domain: str, *, ed25519: bool = False) -> SendingDomain:
    """Add a domain with a new RSA-2048 key (and an ed25519 key as a second signature when
    asked).  Adding a domain that is there already changes nothing but the ed25519 key it
    lacks when asked for one; the answer's ``created`` says which happened."""
    domain = normalise(raw_domain)
    pk, sk = domains_pk(account), domain_sk(domain)
    existing = deps.store.get(pk, sk)
    if existing is None:
        stem = "lm" + _secrets.token_hex(4)  # per account: two accounts' keys never share a name
        keys = [_new_key(deps, account, domain, stem, "rsa-sha256")]
        if ed25519:
            keys.append(_new_key(deps, account, domain, stem + "e", "ed25519-sha256"))
        item = {"pk": pk, "sk": sk, "account": account, "domain": domain, "keys": keys,
                "state": "pending", "checks": {}, "created_at": deps.clock.now()}
        try:
            deps.store.put(item, condition=IF_ABSENT)
            return _view(deps.settings, item, created=True)
        except ConditionFailed:  # added at the same moment by another call: theirs stands
            existing = deps.store.get(pk, sk)
            assert existing is not None
    if ed25519 and not any(k["algorithm"] == "ed25519-sha256" for k in existing.get("keys") or []):
        stem = str(existing["keys"][0]["selector"])
        keys = [*existing["keys"], _new_key(deps, account, domain, stem + "e", "ed25519-sha256")]
        deps.store.update(pk, sk, set={"keys": keys})
        existing = {**existing, "keys": keys}
    return _view(deps.settings, existing)


def get(deps: Deps, account: str, raw_domain: str) -> SendingDomain:
    domain = normalise(raw_domain)
    item = deps.store.get(domains_pk(account), domain_sk(domain))
    if item is None:
        raise NotFound(f"no sending domain {domain} in this account (run `lunamail domains add {domain}`)")
    return _view(deps.settings, item)


def list_domains(deps: Deps, account: str, *, limit: int = 50,
                 cursor: str | None = None) -> tuple[list[SendingDomain], str | None]:
    page = deps.store.query(domains_pk(account), prefix="DOM#", limit=max(1, min(limit, MAX_DOMAINS_PAGE)),
                            cursor=cursor)
    return [_view(deps.settings, item) for item in page.items], page.cursor


def _dmarc_answers(resolver: Resolver, domain: str) -> list[str]:
    """``_dmarc.<domain>``, else the closest parent's (receivers fall back to the
    organisational domain's policy)."""
    labels = domain.split(".")
    for i in range(len(labels) - 1):
        found = resolver.txt("_dmarc." + ".".join(labels[i:]))
        if found:
            return found
    return []


def _judge(resolver: Resolver, domain: str, record: DnsRecord, settings: Settings) -> tuple[RecordStatus, str]:
    try:
        if record.purpose == "dkim":
            return judge_dkim(record.value, resolver.txt(record.name))
        if record.purpose == "spf":
            return judge_spf(spf_mechanism(settings), resolver.txt(record.name))
        if record.purpose == "dmarc":
            return judge_dmarc(_dmarc_answers(resolver, domain))
        return judge_mx(record.value.partition(" ")[2], resolver.mx(record.name))
    except DnsUnavailable as e:
        return "unknown", str(e)[:120]


def check(deps: Deps, account: str, raw_domain: str, resolver: Resolver) -> SendingDomain:
    """Look every record up and store what was found, and the state that follows."""
    current = get(deps, account, raw_domain)
    checks: dict[str, dict[str, str]] = {}
    statuses: list[RecordStatus] = []
    for record in current.records:
        status, found = _judge(resolver, current.domain, record, deps.settings)
        checks[f"{record.purpose} {record.name}"] = {"status": status, "found": found, "value": record.value}
        statuses.append(status)
    state = state_after(current.state, statuses)
    now = deps.clock.now()
    changes: dict[str, Any] = {"checks": checks, "checked_at": now, "state": state}
    if state == "verified":
        changes["verified_at"] = now
    pk, sk = domains_pk(account), domain_sk(current.domain)
    deps.store.update(pk, sk, set=changes)
    item = deps.store.get(pk, sk)
    assert item is not None
    return _view(deps.settings, item)


def _candidates(from_domain: str) -> list[str]:
    """The From domain and each parent (``a.b.example.com``, ``b.example.com``, ``example.com``)."""
    labels = from_domain.lower().rstrip(".").split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def covering(deps: Deps, account: str, from_domain: str) -> Item | None:
    """The account's domain that covers mail From ``from_domain``: itself, else its closest
    parent (DMARC's relaxed alignment accepts a parent's signature)."""
    names = _candidates(from_domain)
    if not names:
        return None
    found = deps.store.get_many([(domains_pk(account), domain_sk(n)) for n in names])
    return next((item for item in found if item is not None), None)


def covering_domain(deps: Deps, account: str, from_domain: str) -> SendingDomain | None:
    item = covering(deps, account, from_domain)
    return None if item is None else _view(deps.settings, item)


def signers(deps: Deps, account: str, from_domain: str) -> list[DkimSigner]:
    """The covering domain's signers, RSA first (then ed25519); [] without a domain."""
    item = covering(deps, account, from_domain)
    if item is None:
        return []
    key = deps.secrets.key(account, SEAL_PURPOSE)
    out = []
    ordered: Sequence[dict[str, Any]] = sorted(item.get("keys") or [], key=lambda k: k["algorithm"] != "rsa-sha256")
    for k in ordered:
        pem = sealing.unseal(key, str(k["sealed"]), _bound_to(account, str(item["domain"]), str(k["selector"])))
        algorithm: Algorithm = "rsa-sha256" if k["algorithm"] == "rsa-sha256" else "ed25519-sha256"
        out.append(DkimSigner(str(item["domain"]), str(k["selector"]), pem, algorithm=algorithm))
    return out
