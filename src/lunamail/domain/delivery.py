"""Delivery: the fan-out from an audience to batches of sends, and their outcomes."""

from __future__ import annotations

from typing import Any

from lunamail.domain.messages import Command, Event, message

# A recipient as it travels in messages: {"email", "name", "fields": {...}, "list": list_id}.
Recipient = dict[str, Any]


@message("audience.SelectRecipients")
class SelectRecipients(Command):
    """Audience: select page ``seq`` of a campaign's audience (lists[list_index] from ``cursor``),
    minus suppressed (listed apart as skipped) and not-subscribed addresses, emit RecipientsSelected, then the
    command for the next page.  One page per handler run."""

    campaign: str
    lists: tuple[str, ...]
    list_index: int = 0
    cursor: str | None = None
    seq: int = 0


@message("audience.RecipientsSelected")
class RecipientsSelected(Event):
    """One page of a campaign's audience.  ``last`` is True on the final page, whose
    ``seq + 1`` is then the number of pages."""

    campaign: str
    seq: int
    recipients: tuple[Recipient, ...]
    last: bool
    # members left out at send time, each {"email", "reason"} (e.g. "suppressed: hard bounce"):
    # delivery keeps them in the ledger as ``skipped``, never sends to them
    skipped: tuple[dict[str, str], ...] = ()


@message("delivery.SendBatch")
class SendBatch(Command):
    """Send one batch of recipients.  Safe to run twice: recipients with a final
    outcome on record are skipped."""

    campaign: str
    batch: str  # stable id: f"{seq}-{n}"
    recipients: tuple[Recipient, ...]
    attempt: int = 0


@message("delivery.BatchSent")
class BatchSent(Event):
    """Final outcomes recorded for one batch id (whichever run of it recorded them), so a
    consumer that counts each batch id once counts every recipient exactly once.
    ``attempt`` > 0 marks a retry batch of previously deferred recipients."""

    campaign: str
    batch: str
    attempt: int
    sent: int
    deferred: int
    failed: int
    at: float
    failures: tuple[dict[str, Any], ...] = ()  # [{"email", "code", "reply"}] for failed
    sent_emails: tuple[str, ...] = ()  # who this batch id recorded as sent (for engagement exports)
    # of sent + failed, how many had failed before and were sent again by ``retry --failed``
    # (their earlier failure is no longer their outcome: reports count it off)
    retried: int = 0


@message("delivery.RecipientsPlanned")
class RecipientsPlanned(Event):
    """Recipients newly claimed from audience page ``seq`` (duplicates across lists are
    claimed once, by the first page that saw them)."""

    campaign: str
    seq: int
    count: int
    skipped: int = 0  # members of the page left out (suppressed, invalid...): in the ledger, never sent


@message("delivery.PlanningCompleted")
class PlanningCompleted(Event):
    """Every audience page is claimed: ``total`` recipients will get an outcome."""

    campaign: str
    total: int


@message("delivery.ResumeParked")
class ResumeParked(Command):
    """Re-issue one page of the batches parked while the campaign was paused."""

    campaign: str


@message("delivery.CampaignDelivered")
class CampaignDelivered(Event):
    """Every planned recipient has a final outcome (sent or failed).  Emitted once per
    round: the send, then each ``retry --failed`` of it.  ``reason`` says why nothing
    could be delivered when ``sent`` is 0 (the campaign then ends ``failed``)."""

    campaign: str
    planned: int
    sent: int
    failed: int
    at: float
    reason: str = ""


@message("delivery.ReopenFailed")
class ReopenFailed(Command):
    """``retry --failed``: give the retryable failures of one record partition (from
    ``cursor``, one page per run) a new send, then chain to the next page or partition.
    ``round`` names the retry (its batches are ``x{round}-...``)."""

    campaign: str
    round: int
    shard: int = 0
    cursor: str | None = None
