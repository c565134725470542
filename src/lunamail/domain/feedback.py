"""Feedback events: what happened to a message after it left us.

Bounces, complaints, deliveries, delays and auto-replies arrive from two
sources -- raw mail parsed by the DSN classifier (``source="dsn"``) and SES
notifications (``source="ses"``) -- and are normalised into these events so
suppression, reports and the reputation guard never care where they came from.
Every field is a JSON scalar.  ``campaign`` is ``""`` when the feedback could
not be tied to a campaign (e.g. a bounce without a VERP token).
"""

from __future__ import annotations

from typing import Literal

from lunamail.domain.messages import Event, message

BounceType = Literal["hard", "soft"]
FeedbackSource = Literal["dsn", "ses"]


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


@message("feedback.Complained")
class Complained(Event):
    """The recipient reported the message (ARF / feedback loop).  Always suppress."""

    campaign: str
    email: str
    feedback_type: str = "abuse"
    source: FeedbackSource = "dsn"
    at: float


@message("feedback.Delivered")
class Delivered(Event):
    """The receiving server accepted the message (SES Delivery notifications)."""

    campaign: str
    email: str
    at: float
    source: FeedbackSource = "ses"


@message("feedback.DeliveryDelayed")
class DeliveryDelayed(Event):
    """Delivery is still being retried; not a bounce, so not counted as one."""

    campaign: str
    email: str
    status: str | None = None
    diagnostic: str | None = None
    source: FeedbackSource = "dsn"
    at: float


@message("feedback.AutoReplied")
class AutoReplied(Event):
    """An out-of-office or other automatic reply: proof the mailbox exists, never a bounce."""

    campaign: str
    email: str
    subject: str = ""
    source: FeedbackSource = "dsn"
    at: float
