"""Campaigns: the messages other services react to.

(The campaign model and its state machine live in ``domain/campaign_model.py``.)
"""

from __future__ import annotations

from typing import Any

from lunamail.domain.messages import Command, Event, message


@message("campaigns.SendCampaign")
class SendCampaign(Command):
    """Start sending now (or at ``at``, epoch seconds, when scheduled).

    A scheduled command carries the ``at`` it was issued for: when the campaign has been
    re-scheduled since, the stored time differs and the stale command is ignored.  Whoever
    enqueues it should delay it until ``at`` (and re-enqueue it when it arrives early).
    """

    campaign: str
    at: float | None = None


@message("campaigns.CampaignSendStarted")
class CampaignSendStarted(Event):
    """The campaign passed its pre-send checks and starts sending.

    ``content`` is everything delivery needs to render, so delivery keeps its
    own copy and never reads the campaigns service's items:
    ``{"subject", "html", "text", "from_name", "from_email", "reply_to",
    "headers": {...}, "attachments": [{"key", "filename", "content_type"}]}``.
    """

    campaign: str
    lists: tuple[str, ...]
    content: dict[str, Any]
    started_at: float


@message("campaigns.CampaignPaused")
class CampaignPaused(Event):
    campaign: str
    reason: str = ""
    at: float = 0.0  # when it was decided: delivery keeps the latest decision (0: unknown)


@message("campaigns.CampaignResumed")
class CampaignResumed(Event):
    campaign: str
    at: float = 0.0


@message("campaigns.CampaignCancelled")
class CampaignCancelled(Event):
    campaign: str
    at: float = 0.0


@message("campaigns.SendTest")
class SendTest(Command):
    """Send the campaign to a few ``addresses`` as a test: marked as a test, never counted in
    reports, never recorded as a send.  ``content`` has the same shape as in
    :class:`CampaignSendStarted`."""

    campaign: str
    addresses: tuple[str, ...]
    content: dict[str, Any]
    # names the outcome delivery records for the door to show (what the relay answered per
    # address); without one a refusal fails the message instead
    test_id: str = ""


@message("campaigns.CampaignRetryStarted")
class CampaignRetryStarted(Event):
    """``retry --failed``: a sent (or failed) campaign sends again to the recipients whose
    last outcome is a retryable failure.  ``at`` names the retry: delivery starts it once,
    and an older ``CampaignDelivered`` arriving late no longer finishes the campaign."""

    campaign: str
    at: float
