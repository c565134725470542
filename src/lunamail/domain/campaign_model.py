"""The campaign model and its state machine.  Pure: no I/O, no clock, no storage format.

A campaign's life is ``draft -> scheduled -> sending -> sent`` with the side
states ``paused``, ``cancelled`` and ``failed``.  Every action has one target
state and a set of states it may start from; keeping that as a single table
(``TRANSITIONS``) makes the rules reviewable at a glance and lets the tests
walk every (state, action) pair.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "TRANSITIONS",
    "Action",
    "Attachment",
    "Campaign",
    "CampaignStatus",
    "IllegalTransition",
    "allowed_actions",
    "can",
    "next_status",
]


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Action(StrEnum):
    EDIT = "edit"
    DELETE = "delete"
    SCHEDULE = "schedule"
    UNSCHEDULE = "unschedule"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    COMPLETE = "complete"
    FAIL = "fail"
    RETRY = "retry"


S = CampaignStatus

# action -> (states it may start from, resulting state; None = the campaign is gone)
TRANSITIONS: Mapping[Action, tuple[frozenset[CampaignStatus], CampaignStatus | None]] = {
    Action.EDIT: (frozenset({S.DRAFT}), S.DRAFT),
    # Only campaigns that never started (or were stopped) may be removed; a sent campaign's
    # record anchors its reports.
    Action.DELETE: (frozenset({S.DRAFT, S.CANCELLED, S.FAILED}), None),
    # Re-scheduling a scheduled campaign moves its time; the old timer is then ignored.
    Action.SCHEDULE: (frozenset({S.DRAFT, S.SCHEDULED}), S.SCHEDULED),
    Action.UNSCHEDULE: (frozenset({S.SCHEDULED}), S.DRAFT),
    Action.START: (frozenset({S.DRAFT, S.SCHEDULED}), S.SENDING),
    Action.PAUSE: (frozenset({S.SENDING}), S.PAUSED),
    Action.RESUME: (frozenset({S.PAUSED}), S.SENDING),
    Action.CANCEL: (frozenset({S.SCHEDULED, S.SENDING, S.PAUSED}), S.CANCELLED),
    # Delivery reports "every planned recipient has an outcome".  A pause that races the
    # last batch must not leave the campaign paused forever, so paused may complete too.
    Action.COMPLETE: (frozenset({S.SENDING, S.PAUSED}), S.SENT),
    # Failing checks at the start, or a send that reached nobody (a pause racing its end too).
    Action.FAIL: (frozenset({S.SCHEDULED, S.SENDING, S.PAUSED}), S.FAILED),
    # ``retry --failed``: send again to the recipients whose last outcome is a retryable failure.
    Action.RETRY: (frozenset({S.SENT, S.FAILED}), S.SENDING),
}

_VERB = {
    Action.EDIT: "edit",
    Action.DELETE: "delete",
    Action.SCHEDULE: "schedule",
    Action.UNSCHEDULE: "unschedule",
    Action.START: "start sending",
    Action.PAUSE: "pause",
    Action.RESUME: "resume",
    Action.CANCEL: "cancel",
    Action.COMPLETE: "mark as sent",
    Action.FAIL: "mark as failed",
    Action.RETRY: "retry the failures of",
}


class IllegalTransition(Exception):
    """An action that the campaign's current state does not allow."""

    def __init__(
        self, from_status: CampaignStatus, to_status: CampaignStatus | None, action: Action
    ) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[action][0]))
        super().__init__(
            f"cannot {_VERB[action]} a campaign that is {from_status}"
            f" (only when {allowed})"
        )
        self.from_status = from_status
        self.to_status = to_status
        self.action = action


def can(status: CampaignStatus, action: Action) -> bool:
    """Whether ``action`` is allowed in ``status``."""
    return status in TRANSITIONS[action][0]


def next_status(status: CampaignStatus, action: Action) -> CampaignStatus | None:
    """The state after ``action``; raises IllegalTransition when not allowed."""
    sources, target = TRANSITIONS[action]
    if status not in sources:
        raise IllegalTransition(status, target, action)
    return target


def allowed_actions(status: CampaignStatus) -> list[Action]:
    """Actions a UI may offer for a campaign in ``status``."""
    return [a for a, (sources, _) in TRANSITIONS.items() if status in sources]


@dataclass(frozen=True)
class Attachment:
    """A file stored as a blob; the campaigns service keeps only its reference."""

    key: str
    filename: str
    content_type: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "filename": self.filename, "content_type": self.content_type}


@dataclass(frozen=True)
class Campaign:
    """A campaign as the campaigns service knows it.

    ``text`` is the author's text part, or None to derive it from the HTML at send time.
    ``lists`` are audience list ids as given (the audience service owns the lists).
    Times are epoch seconds (UTC); ``schedule_tz`` only remembers the zone the author used.
    Send counters are not here: reports and delivery own them.
    """

    account: str
    id: str
    name: str
    subject: str = ""
    from_name: str = ""
    from_email: str = ""
    reply_to: str = ""
    html: str = ""
    text: str | None = None
    lists: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    status: CampaignStatus = CampaignStatus.DRAFT
    created_at: float = 0.0
    updated_at: float = 0.0
    scheduled_at: float | None = None
    schedule_tz: str | None = None
    started_at: float | None = None
    sent_at: float | None = None
    track_opens: bool | None = None  # None: the installation's default (setting track_opens)
    track_clicks: bool | None = None
    headers: tuple[tuple[str, str], ...] = ()  # the campaign's own extra headers (validated)
    reason: str = ""  # why it was paused or failed
    retried_at: float | None = None  # when the last ``retry --failed`` started (None: never)
    send_token: str = ""  # which trigger started the send (makes the send handler idempotent)
    version: int = 0

    @property
    def scheduled_at_utc(self) -> datetime | None:
        """The schedule as an aware UTC datetime (for display)."""
        if self.scheduled_at is None:
            return None
        return datetime.fromtimestamp(self.scheduled_at, tz=UTC)

    def transition(self, action: Action, at: float, **changes: Any) -> Campaign:
        """A copy in the state after ``action`` (raises IllegalTransition).  ``changes``
        sets other fields in the same step."""
        target = next_status(self.status, action)
        status = self.status if target is None else target
        return dataclasses.replace(
            self, status=status, updated_at=at, version=self.version + 1, **changes
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (for APIs and storage)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["status"] = str(self.status)
        out["lists"] = list(self.lists)
        out["attachments"] = [a.to_dict() for a in self.attachments]
        out["headers"] = dict(self.headers)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Campaign:
        """Inverse of :meth:`to_dict`; unknown keys are ignored so old readers survive new
        fields."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["status"] = CampaignStatus(values.get("status", "draft"))
        values["lists"] = tuple(values.get("lists") or ())
        values["headers"] = tuple((str(k), str(v)) for k, v in dict(values.get("headers") or {}).items())
        values["attachments"] = tuple(
            Attachment(str(a["key"]), str(a["filename"]), str(a["content_type"]))
            for a in values.get("attachments") or ()
        )
        return cls(**values)
