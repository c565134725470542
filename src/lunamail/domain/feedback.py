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

BounceType = Literal["hard", "soft"]
FeedbackSource = Literal["dsn", "arf", "ses"]


@message("feedback.Bounced")
class Bounced(Event):
    """Delivery to ``email`` failed.  ``hard`` means the address itself is bad and
    should be suppressed; ``soft`` means this attempt failed (full mailbox, policy
    block, throttling) but the address may still be good."""

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
