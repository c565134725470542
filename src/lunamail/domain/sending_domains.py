"""Sending domains (like SES identities): a domain an account sends From, its DKIM keys and
the DNS records that make receivers trust the mail.

A domain is ``pending`` until one check finds every required record, ``verified`` while
the last check found them all, and ``failing`` once a later check misses one (mail still
goes out signed; receivers may stop trusting it).  A lookup that got no answer changes
nothing: it says nothing about the record.  Pure: the delivery service feeds it DNS answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

DomainState = Literal["pending", "verified", "failing"]
#: ``ok`` found as asked; ``missing`` no such record; ``wrong`` a record that does not match;
#: ``unknown`` DNS gave no answer; ``pending`` never checked (or changed since).
RecordStatus = Literal["pending", "ok", "missing", "wrong", "unknown"]
Purpose = Literal["dkim", "spf", "dmarc", "mx"]

#: TXT strings are at most 255 octets; longer values are published as several strings.
TXT_CHUNK = 255


@dataclass(frozen=True)
class DnsRecord:
    """One record to publish, with what the last check found."""

    purpose: Purpose
    type: Literal["TXT", "MX"]
    name: str  # fully qualified, no final dot
    value: str  # what to publish (an MX: "10 host")
    note: str = ""  # what it is for, in a few words
    status: RecordStatus = "pending"
    found: str = ""  # what DNS had instead (for ``wrong``), shortened

    def zone_line(self, ttl: int = 3600) -> str:
        """The record as a zone-file line (a long TXT split into quoted strings)."""
        if self.type == "TXT":
            parts = [self.value[i : i + TXT_CHUNK] for i in range(0, len(self.value), TXT_CHUNK)] or [""]
            data = " ".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in parts)
        else:
            pref, _, host = self.value.partition(" ")
            data = f"{pref} {host}."
        return f"{self.name}. {ttl} IN {self.type} {data}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "zone_line": self.zone_line()}


@dataclass(frozen=True)
class DkimKeyInfo:
    """A public DKIM key of a domain (the private half stays sealed in the store)."""

    selector: str
    algorithm: str  # "rsa-sha256" | "ed25519-sha256"
    record: str  # the TXT value: "v=DKIM1; k=rsa; p=..."


@dataclass(frozen=True)
class SendingDomain:
    account: str
    domain: str
    state: DomainState
    keys: tuple[DkimKeyInfo, ...]
    records: tuple[DnsRecord, ...]
    return_path_domain: str  # the VERP return path's domain (SPF is checked there)
    created_at: float
    checked_at: float | None = None
    verified_at: float | None = None
    created: bool = False  # True only in the answer of the call that added it

    @property
    def failing_records(self) -> list[DnsRecord]:
        """The required records the last check did not find as asked."""
        return [r for r in self.records if r.status in ("missing", "wrong")]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["records"] = [r.to_dict() for r in self.records]
        out["failing"] = [f"{r.purpose} {r.name}" for r in self.failing_records]
        return out


def state_after(previous: DomainState, statuses: Iterable[RecordStatus]) -> DomainState:
    """The state once a check saw ``statuses`` (one per required record)."""
    seen = list(statuses)
    if any(s == "unknown" for s in seen):
        return previous  # no answer is no news
    if seen and all(s == "ok" for s in seen):
        return "verified"
    return "failing" if previous in ("verified", "failing") else "pending"


def txt_tags(value: str) -> dict[str, str]:
    """``k=v; k=v`` (DKIM and DMARC records) -> lower-case tag -> value without spaces."""
    out: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, val = part.partition("=")
        if sep:
            out.setdefault(name.strip().lower(), "".join(val.split()))
    return out


def judge_dkim(expected: str, found: Sequence[str]) -> tuple[RecordStatus, str]:
    """A DKIM key record is there when some TXT at its name has our public key."""
    want = txt_tags(expected).get("p", "")
    if not found:
        return "missing", ""
    for value in found:
        tags = txt_tags(value)
        if tags.get("p") == want and tags.get("v", "DKIM1").upper() == "DKIM1":
            return "ok", ""
    return "wrong", _short(found[0])


def judge_spf(mechanism: str, found: Sequence[str]) -> tuple[RecordStatus, str]:
    """One ``v=spf1`` record that names the relay's mechanism (two are an SPF error)."""
    spf = [v for v in found if v.strip().lower().startswith("v=spf1")]
    if not spf:
        return "missing", ""
    if len(spf) > 1:
        return "wrong", "two SPF records (receivers treat that as an error): " + _short(" | ".join(spf))
    terms = {t.lower().lstrip("+") for t in spf[0].split()}
    return ("ok", "") if mechanism.lower() in terms else ("wrong", _short(spf[0]))


def judge_dmarc(found: Sequence[str]) -> tuple[RecordStatus, str]:
    """Any DMARC policy counts (the published value is a suggestion)."""
    if any(v.strip().upper().startswith("V=DMARC1") for v in found):
        return "ok", ""
    return ("wrong", _short(found[0])) if found else ("missing", "")


def judge_mx(host: str, found: Sequence[tuple[int, str]]) -> tuple[RecordStatus, str]:
    if not found:
        return "missing", ""
    want = host.lower().rstrip(".")
    if any(h == want for _, h in found):
        return "ok", ""
    return "wrong", _short(", ".join(f"{p} {h}" for p, h in found))


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def with_statuses(records: Sequence[DnsRecord], checked: Mapping[str, Mapping[str, str]]) -> tuple[DnsRecord, ...]:
    """Records with the statuses a check stored (keyed by ``purpose name``); a record whose
    value changed since (another relay, a new key) is ``pending`` again."""
    out = []
    for r in records:
        seen = checked.get(f"{r.purpose} {r.name}")
        if seen and seen.get("value") == r.value:
            out.append(replace(r, status=seen.get("status", "pending"), found=seen.get("found", "")))  # type: ignore[arg-type]
        else:
            out.append(r)
    return tuple(out)


@dataclass(frozen=True)
class RecordPlan:
    """What the installation's settings say every domain's records must look like."""

    return_path_domain: str | None = None  # None: the domain itself
    spf_mechanism: str = ""
    inbound_mx: str = ""  # the host that receives bounces for the return-path domain


def dmarc_suggestion(domain: str) -> str:
    return f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}; adkim=r; aspf=r"


def records_for(domain: str, keys: Sequence[DkimKeyInfo], plan: RecordPlan) -> tuple[DnsRecord, ...]:
    """Every record the domain needs: each DKIM key, SPF at the return-path domain, a DMARC
    policy, and the return-path domain's MX when bounces come back to this installation."""
    rp = plan.return_path_domain or domain
    out = [
        DnsRecord("dkim", "TXT", f"{k.selector}._domainkey.{domain}", k.record,
                  f"DKIM public key ({k.algorithm})")
        for k in keys
    ]
    out.append(DnsRecord("spf", "TXT", rp, f"v=spf1 {plan.spf_mechanism} ~all",
                         "SPF of the return path (merge the mechanism into an existing v=spf1 record)"))
    out.append(DnsRecord("dmarc", "TXT", f"_dmarc.{domain}", dmarc_suggestion(domain),
                         "DMARC policy (a suggestion: start at p=none, any v=DMARC1 record passes)"))
    if plan.inbound_mx and rp != domain:
        out.append(DnsRecord("mx", "MX", rp, f"10 {plan.inbound_mx}", "bounces to the return path come back here"))
    return tuple(out)
