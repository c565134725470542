"""The reputation guard: thresholds, rates, the reputation score and the guard's messages.

Mailbox providers judge a sender by two ratios -- hard bounces per message sent and
complaints per message sent -- and suspend senders who stay above their limits.  The
guard watches the same ratios and acts first: it pauses a campaign that bounces or is
reported too often, and locks an account whose recent mail as a whole does.

Everything here is pure (no I/O, no clock): the guard service feeds it counters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from lunamail.domain.messages import Command, Event, message

Metric = Literal["bounce", "complaint", "domain"]

# Defaults after what the large providers enforce: SES reviews an account at a 5%
# bounce rate and 0.1% complaints and may pause it at 10% / 0.5%; Gmail's bulk sender
# rules ask for complaints under 0.1% and never above 0.3% -- so a campaign pauses at
# 0.1% and the account locks at 0.3%, before the provider acts.
DEFAULT_CAMPAIGN_BOUNCE = 0.05
DEFAULT_CAMPAIGN_COMPLAINT = 0.001
DEFAULT_ACCOUNT_BOUNCE = 0.10
DEFAULT_ACCOUNT_COMPLAINT = 0.003
# One receiving domain refusing *us* (authentication, policy, reputation, rate limits):
# pause once it refused at least this many messages and this share of the campaign.
DEFAULT_DOMAIN_REJECTIONS = 20
DEFAULT_DOMAIN_REJECTION_RATE = 0.02
REJECTED_PREFIX = "rej|"  # counter attribute per receiving domain: rej|{domain}
REJECTED_STATUS_PREFIX = "rejst|"  # the last status code that domain gave
DEFAULT_MIN_SAMPLE = 500
DEFAULT_WINDOW_HOURS = 24
MAX_WINDOW_HOURS = 168  # a week of hourly buckets: one query page, bounded item count

# Reputation score weights (points out of 100).
BOUNCE_WEIGHT = 45
COMPLAINT_WEIGHT = 45
LOCK_PENALTY = 30
PAUSE_PENALTY = 10
MAX_PAUSE_PENALTY = 20


@dataclass(frozen=True)
class GuardThresholds:
    """When the guard acts.  Rates are fractions (0.05 = 5%); a rate must *pass* its
    threshold, and only once ``min_sample`` messages were sent, so a handful of early
    bounces in a small send never trips it."""

    campaign_bounce: float = DEFAULT_CAMPAIGN_BOUNCE
    campaign_complaint: float = DEFAULT_CAMPAIGN_COMPLAINT
    account_bounce: float = DEFAULT_ACCOUNT_BOUNCE
    account_complaint: float = DEFAULT_ACCOUNT_COMPLAINT
    min_sample: int = DEFAULT_MIN_SAMPLE
    window_hours: int = DEFAULT_WINDOW_HOURS
    domain_rejections: int = DEFAULT_DOMAIN_REJECTIONS
    domain_rejection_rate: float = DEFAULT_DOMAIN_REJECTION_RATE

    def problems(self) -> dict[str, str]:
        """Field -> what is wrong (empty when the thresholds are usable)."""
        out: dict[str, str] = {}
        if (isinstance(self.domain_rejections, bool) or not isinstance(self.domain_rejections, int)
                or self.domain_rejections < 1):
            out["domain_rejections"] = "must be a whole number of at least 1"
        for name in ("campaign_bounce", "campaign_complaint", "account_bounce", "account_complaint",
                     "domain_rejection_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                out[name] = "must be a number"
            elif not 0 < value <= 1:
                out[name] = f"must be a fraction above 0 and at most 1 (0.05 = 5%), not {value}"
        if isinstance(self.min_sample, bool) or not isinstance(self.min_sample, int) or self.min_sample < 1:
            out["min_sample"] = "must be a whole number of at least 1"
        if (
            isinstance(self.window_hours, bool)
            or not isinstance(self.window_hours, int)
            or not 1 <= self.window_hours <= MAX_WINDOW_HOURS
        ):
            out["window_hours"] = f"must be a whole number of hours from 1 to {MAX_WINDOW_HOURS}"
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GuardThresholds:
        """Stored or given values over the defaults; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return replace(cls(), **{k: v for k, v in data.items() if k in names and v is not None})


@dataclass(frozen=True)
class Counts:
    """Outcomes over some span: ``sent`` accepted by the relay, ``bounces`` hard bounces,
    ``complaints``; ``soft_bounces`` and ``failed`` (refused at send time) are shown but
    not part of the rates."""

    sent: int = 0
    bounces: int = 0
    complaints: int = 0
    soft_bounces: int = 0
    failed: int = 0

    @property
    def bounce_rate(self) -> float:
        return self.bounces / self.sent if self.sent > 0 else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent > 0 else 0.0

    def plus(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def minus(self, other: Counts) -> Counts:
        """Difference, never below zero (a baseline taken while counters moved)."""
        return Counts(*(max(0, a - b) for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.sent, self.bounces, self.complaints, self.soft_bounces, self.failed)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> Counts:
        """From a counter item (missing attributes are zero)."""
        if not item:
            return cls()
        return cls(*(int(item.get(f.name) or 0) for f in fields(cls)))


@dataclass(frozen=True)
class Verdict:
    """Why the guard acts: which rate passed which threshold."""

    metric: Metric
    rate: float
    threshold: float
    reason: str


def percent(rate: float) -> str:
    """0.0512 -> "5.12%" (two decimals: complaint limits live at 0.1%)."""
    return f"{rate * 100:.2f}%"


def judge(counts: Counts, *, bounce_limit: float, complaint_limit: float, min_sample: int,
          scope: str) -> Verdict | None:
    """The verdict when a rate passes its limit on a large enough sample, else None.
    Bounces are judged first: they are the more common and the more urgent signal."""
    if counts.sent < min_sample:
        return None
    if counts.bounce_rate > bounce_limit:
        return Verdict(
            "bounce", counts.bounce_rate, bounce_limit,
            f"{scope} bounce rate {percent(counts.bounce_rate)} passed the {percent(bounce_limit)}"
            f" limit ({counts.bounces} hard bounces of {counts.sent} sent)",
        )  # fmt: skip
    if counts.complaint_rate > complaint_limit:
        return Verdict(
            "complaint", counts.complaint_rate, complaint_limit,
            f"{scope} complaint rate {percent(counts.complaint_rate)} passed the"
            f" {percent(complaint_limit)} limit ({counts.complaints} complaints of {counts.sent} sent)",
        )  # fmt: skip
    return None


def judge_campaign(counts: Counts, t: GuardThresholds) -> Verdict | None:
    return judge(counts, bounce_limit=t.campaign_bounce, complaint_limit=t.campaign_complaint,
                 min_sample=t.min_sample, scope="campaign")


def judge_domains(total: Mapping[str, Any], attempted: int, t: GuardThresholds,
                  describe: Any = None) -> tuple[str, Verdict] | None:
    """The receiving domain whose sender-side rejections (counters ``rej|{domain}`` in
    ``total``) passed both the count and the share of ``attempted`` messages, if any.
    ``describe(status)`` names what a status code means (e.g. "DMARC")."""
    worst: tuple[int, str] | None = None
    for name, value in total.items():
        if name.startswith(REJECTED_PREFIX) and isinstance(value, int | float) and not isinstance(value, bool):
            n = int(value)
            if worst is None or n > worst[0]:
                worst = (n, name[len(REJECTED_PREFIX):])
    if worst is None or attempted <= 0:
        return None
    n, domain = worst
    share = n / attempted
    if n < t.domain_rejections or share <= t.domain_rejection_rate:
        return None
    status = str(total.get(REJECTED_STATUS_PREFIX + domain) or "")
    what = describe(status) if describe is not None and status else ""
    why = " ".join(x for x in (status, what) if x)
    reason = (f"{domain} rejected {n:,} of {attempted:,} messages ({percent(share)})"
              + (f": {why}" if why else "") + "; sender-side, no recipient was suppressed")
    return domain, Verdict("domain", share, t.domain_rejection_rate, reason)


def judge_account(counts: Counts, t: GuardThresholds) -> Verdict | None:
    return judge(counts, bounce_limit=t.account_bounce, complaint_limit=t.account_complaint,
                 min_sample=t.min_sample, scope="account")


def reputation_score(counts: Counts, t: GuardThresholds, *, locked_reason: str | None = None,
                     recent_pauses: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """A 0-100 score (100 = clean) and the deductions that made it.

    Each rate costs up to its weight, in proportion to how close it is to the *account*
    limit (the point where the guard locks), scaled by how much of ``min_sample`` the
    window holds -- so a few bounces early in the day cost little.  A lock by the guard and
    campaigns it paused recently cost fixed points on top.
    """
    reasons: list[dict[str, Any]] = []
    confidence = min(1.0, counts.sent / t.min_sample) if t.min_sample > 0 else 1.0

    def rate_deduction(code: str, rate: float, limit: float, weight: int, what: str) -> None:
        points = round(weight * min(1.0, rate / limit) * confidence)
        if points > 0:
            reasons.append({
                "code": code, "points": -points,
                "message": f"{what} {percent(rate)} against a {percent(limit)} limit"
                           f" over {counts.sent} sent",
            })  # fmt: skip

    rate_deduction("bounce_rate", counts.bounce_rate, t.account_bounce, BOUNCE_WEIGHT, "bounce rate")
    rate_deduction("complaint_rate", counts.complaint_rate, t.account_complaint, COMPLAINT_WEIGHT,
                   "complaint rate")
    if locked_reason is not None:
        reasons.append({"code": "account_locked", "points": -LOCK_PENALTY,
                        "message": f"sending locked by the guard: {locked_reason}"})
    if recent_pauses > 0:
        points = min(MAX_PAUSE_PENALTY, PAUSE_PENALTY * recent_pauses)
        reasons.append({"code": "campaigns_paused", "points": -points,
                        "message": f"{recent_pauses} campaign(s) paused by the guard recently"})
    score = 100 + sum(int(r["points"]) for r in reasons)
    return max(0, min(100, score)), reasons


# ---------------------------------------------------------------- messages


@message("guard.CampaignGuardTripped")
class CampaignGuardTripped(Event):
    """A sending campaign's rate passed its threshold: the campaigns service pauses it.
    Emitted once per trip; the numbers are the ones that caused it."""

    campaign: str
    reason: str
    metric: str  # "bounce" | "complaint" | "domain" (one receiving domain refuses the sender)
    bounce_rate: float
    complaint_rate: float
    sent: int
    bounces: int
    complaints: int
    threshold: float
    at: float = 0.0
    domain: str = ""  # the receiving domain, for metric "domain"


@message("guard.AccountGuardTripped")
class AccountGuardTripped(Event):
    """The account's rates over the rolling window passed the account threshold: the guard
    also asks the accounts service to lock sending.  Emitted once per trip."""

    reason: str
    metric: str
    bounce_rate: float
    complaint_rate: float
    sent: int
    bounces: int
    complaints: int
    threshold: float
    window_hours: int = DEFAULT_WINDOW_HOURS
    at: float = 0.0


@message("campaigns.PauseAccountCampaigns")
class PauseAccountCampaigns(Command):
    """The campaigns service pauses the next page of an account's sending campaigns
    because the account's sending is locked (chained page by page)."""

    reason: str
    cursor: str | None = None
