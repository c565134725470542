"""Feedback events: what happened to a message after it left us.

Bounces, complaints, deliveries, delays and auto-replies arrive from two
sources -- raw mail parsed by the DSN classifier (``source="dsn"``; complaint
reports ``source="arf"``) and SES notifications (``source="ses"``) -- and are normalised into these events so
suppression, reports and the reputation guard never care where they came from.
Every field is a JSON scalar.  ``campaign`` is ``""`` when the feedback could
not be tied to a campaign (e.g. a bounce without a VERP token).  ``id`` is stable
per piece of feedback (``""`` when the producer had none), so a consumer can count
an event the at-least-once bus delivers twice only once.
"""

from __future__ import annotations

from typing import Literal

from lunamail.domain.messages import Command, Event, message

BounceType = Literal["hard", "soft", "sender"]
FeedbackSource = Literal["dsn", "arf", "ses", "smtp"]  # smtp: refused during our own send


# What a sender-side status code is about, for reports ("gmail.com rejected 1,200:
# 5.7.26 DMARC").  Most specific first; matched on the code's prefix.
_SENDER_REASONS: tuple[tuple[str, str], ...] = (
    ("5.7.26", "DMARC / authentication"), ("5.7.509", "DMARC"), ("5.7.23", "SPF"),
    ("5.7.25", "no PTR record"), ("5.7.27", "sender domain has no MX"), ("5.7.28", "IP reputation"),
    ("4.7.28", "IP rate limit"), ("5.7.606", "IP blocked"), ("5.7.708", "IP blocked"),
    ("5.7.350", "spam"), ("4.2.1", "rate limit"), ("5.2.1", "rate limit"), ("5.1.7", "sender address"),
    ("5.1.8", "sender domain"), ("5.4.6", "mail loop"), ("5.3.4", "message too large"),
    ("5.7.", "policy / block"), ("4.7.", "throttled"), ("5.6.", "content"), ("5.5.", "protocol"),
    ("5.4.", "routing"),
)


def sender_reason(status: str | None) -> str:
    """A short label for a sender-side rejection's status code ("" when unknown)."""
    if not status:
        return ""
    for prefix, label in _SENDER_REASONS:
        if status == prefix or (prefix.endswith(".") and status.startswith(prefix)):
            return label
    return ""


def receiving_domain(email: str) -> str:
    """The domain that received (or refused) mail for ``email``, lower-case."""
    return email.rpartition("@")[2].strip().strip(">").lower()[:253]


@message("feedback.Bounced")
class Bounced(Event):
    """Delivery to ``email`` failed.  ``hard`` means the address itself is bad and
    should be suppressed; ``soft`` means this attempt failed (full mailbox, timeout)
    but the address may still be good; ``sender`` means the receiver refused the
    sender (authentication, policy, reputation, rate limit, content): never
    suppressed, counted per receiving domain by reports and the guard."""

    campaign: str
    email: str
    bounce_type: BounceType
    status: str | None = None  # enhanced status code, e.g. "5.1.1"
    diagnostic: str | None = None
    source: FeedbackSource = "dsn"
    at: float
    id: str = ""


@message("feedback.Complained")
class Complained(Event):
    """The recipient reported the message (ARF / feedback loop).  Always suppress."""

    campaign: str
    email: str
    feedback_type: str = "abuse"
    source: FeedbackSource = "dsn"
    at: float
    id: str = ""


@message("feedback.Delivered")
class Delivered(Event):
    """The receiving server accepted the message (SES Delivery notifications)."""

    campaign: str
    email: str
    at: float
    source: FeedbackSource = "ses"
    id: str = ""


@message("feedback.DeliveryDelayed")
class DeliveryDelayed(Event):
    """Delivery is still being retried; not a bounce, so not counted as one."""

    campaign: str
    email: str
    status: str | None = None
    diagnostic: str | None = None
    source: FeedbackSource = "dsn"
    at: float
    id: str = ""


@message("feedback.AutoReplied")
class AutoReplied(Event):
    """An out-of-office or other automatic reply: proof the mailbox exists, never a bounce."""

    campaign: str
    email: str
    subject: str = ""
    source: FeedbackSource = "dsn"
    at: float
    id: str = ""


@message("feedback.SoftBounceLimitReached")
class SoftBounceLimitReached(Event):
    """``email`` soft-bounced ``count`` times within ``window_days``: the feedback policy
    says treat it like a hard bounce.  A separate fact, not a second ``Bounced``, so
    reports and the guard never count the same bounce twice."""

    email: str
    campaign: str  # of the bounce that reached the limit
    count: int
    window_days: float
    status: str | None = None
    diagnostic: str | None = None
    at: float
    id: str = ""


@message("feedback.IngestRaw")
class IngestRaw(Command):
    """Classify one raw inbound feedback message already stored at ``blob_key``.

    Built by ``services.feedback.ingest.store_raw`` after the bytes are durable
    (raw mail is stored before it is parsed).  ``ingest_id`` names this ingest
    attempt: a redelivery of the same command re-emits its events, a second
    ingest of the same bytes (same ``sha256``) emits nothing.
    """

    blob_key: str
    envelope_to: str | None = None
    sha256: str = ""
    received_at: float = 0.0
    ingest_id: str = ""
