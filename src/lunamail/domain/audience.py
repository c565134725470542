"""Audience: lists, subscribers, suppression and imports — the model and its messages.

Subscribers travel as plain dicts (items) on the hot paths (imports of millions
of rows, recipient pages); the dataclasses here describe the shape and are
used where one object at a time is handled (API responses, tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lunamail.domain.addresses import mailbox_key
from lunamail.domain.messages import Command, Event, message


class Status(StrEnum):
    SUBSCRIBED = "subscribed"
    UNCONFIRMED = "unconfirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
#: How strict each status is about mailing someone; where two records of one mailbox
#: disagree (case duplicates being merged), the stricter one wins.
STRICTNESS: dict[str, int] = {
    "subscribed": 0, "unconfirmed": 1, "unsubscribed": 2, "bounced": 3, "complained": 4,
}
# Statuses a bulk import must never turn back into "subscribed": the person (or
# their mailbox) said no, and only the person may say yes again.
OPTED_OUT: frozenset[str] = frozenset({"unsubscribed", "bounced", "complained"})


class ImportMode(StrEnum):
    SUBSCRIBE = "subscribe"  # add new, update fields of existing, never resubscribe
    OVERWRITE = "overwrite"  # replace fields and status of existing
    SKIP_EXISTING = "skip-existing"  # add new only
    BLOCKLIST = "blocklist"  # add to suppression, mark existing as unsubscribed


class FieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    BOOL = "bool"
    DATE = "date"


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: FieldType = FieldType.TEXT


@dataclass(frozen=True)
class List:
    id: str
    name: str
    description: str = ""
    fields: tuple[FieldDef, ...] = ()
    double_opt_in: bool = False
    created_at: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Subscriber:
    email: str
    list: str
    status: Status
    name: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    role: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0


# ---------------------------------------------------------------- keys


def account_pk(account: str) -> str:
    return f"A#{account}"


def list_sk(list_id: str) -> str:
    return f"LIST#{list_id}"


def list_name_sk(name: str) -> str:
    """Index item that makes list names unique per account (case-insensitive)."""
    return f"LISTNAME#{name.casefold()}"


def subscribers_pk(account: str, list_id: str) -> str:
    return f"A#{account}#L#{list_id}"


def subscriber_sk(email: str) -> str:
    """Keyed by the mailbox's identity (case-insensitive, see ``domain.addresses``)."""
    return f"S#{mailbox_key(email)}"


def suppression_pk(account: str) -> str:
    return f"A#{account}#SUP"


def suppression_sk(email: str) -> str:
    return f"SUP#{mailbox_key(email)}"


def optout_pk(account: str) -> str:
    """The account-level opt-outs ("unsubscribe from all lists"): imports and subscribes
    honour them until the person (or an explicit, reasoned resubscribe) says yes again."""
    return f"A#{account}#OPT"


def optout_sk(email: str) -> str:
    return f"OPT#{mailbox_key(email)}"


def history_pk(account: str, email: str) -> str:
    """One mailbox's consent history (every list of the account): what changed, when, how."""
    return f"A#{account}#H#{mailbox_key(email)}"


def history_sk(at: float, uid: str) -> str:
    """Sorted by time; ``uid`` keeps two records of one instant apart."""
    return f"E#{at:020.6f}#{uid}"


def import_sk(import_id: str) -> str:
    return f"IMPORT#{import_id}"


def count_attr(status: str) -> str:
    """Name of the per-status counter attribute on a list item."""
    return f"count_{status}"


# ---------------------------------------------------------------- messages


@message("audience.ImportChunk")
class ImportChunk(Command):
    """Import up to ``settings.import_chunk_rows`` rows of an import, starting at byte
    ``offset`` (physical line ``line``).  Returns the next ImportChunk or ImportCompleted."""

    import_id: str
    offset: int
    line: int
    seq: int = 0


@message("audience.ImportProgressed")
class ImportProgressed(Event):
    import_id: str
    list: str
    rows: int
    bytes_done: int
    bytes_total: int
    counts: dict[str, int]


@message("audience.ImportCompleted")
class ImportCompleted(Event):
    import_id: str
    list: str
    rows: int
    counts: dict[str, int]
    error_report: str | None = None


@message("audience.ListCreated")
class ListCreated(Event):
    list: str
    name: str


@message("audience.ListDeleted")
class ListDeleted(Event):
    list: str
    name: str


@message("audience.PurgeList")
class PurgeList(Command):
    """Delete one page of a deleted list's subscribers, then chain the next page."""

    list: str


@message("audience.SubscriberSubscribed")
class SubscriberSubscribed(Event):
    list: str
    email: str
    status: str
    source: str = ""


@message("audience.SubscriberUnsubscribed")
class SubscriberUnsubscribed(Event):
    list: str
    email: str
    source: str = ""


@message("audience.SubscriberDeleted")
class SubscriberDeleted(Event):
    list: str
    email: str


@message("audience.AddressSuppressed")
class AddressSuppressed(Event):
    email: str
    reason: str = ""


@message("audience.AddressUnsuppressed")
class AddressUnsuppressed(Event):
    email: str
