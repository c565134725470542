"""The response shapes of the HTTP API: what the OpenAPI document promises and what
the server sends are the same pydantic models.

Conventions (README "REST API"): a list is ``{"items": [...], "next_cursor": ...}``;
a time is an RFC 3339 string with an offset (the services keep epoch seconds, the
models convert); a duration or a rate says its unit in its name
(``expires_in_seconds``, ``send_rate_per_second``); a ratio (``bounce_rate``) is a
fraction from 0 to 1.  Every error is ``{"error": {"code", "message", "details"}}``
with a code from :data:`lunamail.app.errors.CODES`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from lunamail.app.errors import CODES
from lunamail.domain.audience import ImportMode, Status
from lunamail.domain.campaign_model import CampaignStatus


def _from_epoch(value: Any) -> Any:
    """Epoch seconds (how the services keep time) -> an aware UTC datetime."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), tz=UTC)
    return value


Timestamp = Annotated[datetime, BeforeValidator(_from_epoch)]
"""RFC 3339 with an offset on the wire (``2030-06-01T07:00:00Z``)."""


class Out(BaseModel):
    """Base of every response model (strict about what it promises, quiet about the rest)."""

    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------- errors


class ErrorDetail(Out):
    code: str = Field(
        description="Stable: clients may branch on it (the list is `lunamail.app.errors.CODES`).",
        json_schema_extra={"enum": list(CODES)},
    )
    message: str = Field(description="For people; may change between releases.")
    details: dict[str, Any] = Field(
        description="Structured detail: `fields` (parameter -> problem) for `invalid_input`, "
        "`reasons` for `pre_send_check_failed`, ..."
    )


class ErrorResponse(Out):
    error: ErrorDetail


_ERROR_TEXT = {
    400: "The request could not be read.",
    401: "No API key, or an invalid or revoked one (`unauthorized`).",
    403: "Not allowed: the key's role may not do this, or a signature is invalid (`forbidden`).",
    404: "No such resource in this account (`not_found`).",
    409: "Conflicts with the current state (`conflict`, `illegal_transition`).",
    413: "The body is too large (`payload_too_large`).",
    422: "A parameter or the body is invalid (`invalid_input`, ...); `details.fields` names them.",
    429: "Too many requests (`too_many_requests`); see `Retry-After`.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route for the error statuses it can really answer."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        codes = [name for name, code in CODES.items() if code.status == status]
        text = _ERROR_TEXT.get(status, "Error.")
        if codes:
            text += " Codes: " + ", ".join(f"`{c}`" for c in codes) + "."
        out[status] = {"model": ErrorResponse, "description": text}
    return out


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass ``next_cursor`` as ``cursor`` for the next (null: the last)."""

    items: list[T]
    next_cursor: str | None = None


class Health(Out):
    status: Literal["ok"]


# ---------------------------------------------------------------- account, keys


class AccountOut(Out):
    id: str
    name: str
    created_at: Timestamp
    sending: Literal["active", "locked"]
    sending_reason: str = ""
    sending_numbers: dict[str, Any] = Field(default_factory=dict)
    sending_changed_at: Timestamp | None = None


Role = Literal["owner", "admin", "sender", "editor", "viewer"]


class ApiKeyOut(Out):
    prefix: str = Field(description="The key's public prefix: how to name it to revoke it.")
    label: str
    role: Role = Field(description="What the key may do.")
    created_at: Timestamp
    revoked_at: Timestamp | None = None
    active: bool


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="The key itself: shown once, never stored.")


class UserOut(Out):
    email: str
    role: Role
    name: str = ""
    created_at: Timestamp
    has_password: bool
    locked_until: Timestamp | None = Field(None, description="Sign-in refused until then (failed attempts).")


class UserInvited(UserOut):
    set_password_link: str = Field(description="One-time link for the user to choose a password.")


# ---------------------------------------------------------------- audience


class FieldOut(Out):
    name: str
    type: Literal["text", "number", "bool", "date"]


class StatusCounts(Out):
    subscribed: int = 0
    unconfirmed: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    complained: int = 0


class ListOut(Out):
    id: str
    name: str
    description: str = ""
    fields: list[FieldOut] = Field(default_factory=list)
    double_opt_in: bool = False
    created_at: Timestamp
    counts: StatusCounts


class SubscriberOut(Out):
    email: str
    name: str = ""
    fields: dict[str, Any] = Field(default_factory=dict)
    status: Status
    source: str = ""
    role: bool = Field(False, description="A role address (info@, sales@, ...).")
    list: str = Field("", description="The list's id.")
    created_at: Timestamp
    updated_at: Timestamp


class HistoryList(Out):
    list: str = Field(description="The list's id.")
    list_name: str = ""
    email: str = Field(description="The address as written on that list.")
    status: Status


class HistorySuppression(Out):
    reason: str = ""
    at: Timestamp


class HistoryOptOut(Out):
    at: Timestamp
    door: str = ""
    detail: str = ""


class HistoryEvent(Out):
    at: Timestamp
    event: str = Field(description="subscribed, imported, confirmed, unsubscribed, opted_out, resubscribed, "
                                   "suppressed, unsuppressed, bounced, complained or merged.")
    list: str = Field("", description="The list's id; empty for account-wide events.")
    list_name: str = ""
    door: str = Field("", description="How it came: import, api, cli, console, link, one-click, feedback, migration.")
    detail: str = Field("", description="Which one: the import's id, the campaign, the reason given.")


class SubscriberHistoryOut(Out):
    """One mailbox's consent across the account (addresses compare case-insensitively)."""

    email: str = Field(description="The address as first written.")
    mailbox: str = Field(description="The case-folded identity every address of this mailbox shares.")
    lists: list[HistoryList]
    suppressed: HistorySuppression | None = None
    opted_out: HistoryOptOut | None = None
    events: list[HistoryEvent] = Field(description="Oldest first.")


class SuppressionOut(Out):
    email: str
    reason: str = ""
    created_at: Timestamp


class UploadTarget(Out):
    url: str
    method: Literal["PUT"] = "PUT"
    expires_in_seconds: int


class ImportOut(Out):
    """An import before it started (``awaiting_upload``, ``uploaded``) or after
    (``running``, ``completed``, ``failed``); counters appear once it runs."""

    id: str = Field(description="The id to start and watch the import by.")
    import_id: str | None = Field(None, description="The audience service's job id once started.")
    list: str
    mode: ImportMode
    status: str
    created_at: Timestamp | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    rows: int | None = None
    imported: int | None = None
    updated: int | None = None
    skipped: int | None = None
    rejected: int | None = None
    duplicates: int | None = None
    suppressed: int | None = None
    opted_out: int | None = Field(
        None, description="Rows skipped because the address unsubscribed from all lists (listed in the error report)."
    )
    role: int | None = None
    columns: dict[str, Any] | None = None
    encoding: str | None = None
    delimiter: str | None = None
    error_report_url: str | None = Field(None, description="The rejected rows as CSV, once there are any.")
    upload: UploadTarget | None = Field(None, description="Where to PUT the CSV (in the create response).")


class UploadOut(Out):
    key: str
    size_bytes: int


# ---------------------------------------------------------------- campaigns


class AttachmentOut(Out):
    key: str
    filename: str
    content_type: str


class CampaignSummary(Out):
    """A campaign without its bodies (listings)."""

    id: str
    name: str
    subject: str = ""
    from_name: str = ""
    from_email: str = ""
    reply_to: str = ""
    lists: list[str] = Field(default_factory=list, description="List ids.")
    attachments: list[AttachmentOut] = Field(default_factory=list)
    status: CampaignStatus
    created_at: Timestamp
    updated_at: Timestamp
    scheduled_at: Timestamp | None = None
    schedule_tz: str | None = None
    started_at: Timestamp | None = None
    sent_at: Timestamp | None = None
    reason: str = Field("", description="Why it was paused or failed.")
    track_opens: bool | None = Field(None, description="Open tracking; null: the installation's default.")
    track_clicks: bool | None = Field(None, description="Click tracking; null: the installation's default.")
    headers: dict[str, str] = Field(default_factory=dict, description="The campaign's own extra headers.")
    version: int
    actions: list[str] = Field(description="What its state allows (edit, schedule, pause, ...).")


class CampaignOut(CampaignSummary):
    html: str = ""
    text: str | None = Field(None, description="The author's text part; null: derived from the HTML.")


class CampaignSendOut(CampaignOut):
    audience_size: int = Field(description="Subscribed members of its lists (one mail per address).")
    tracking: dict[str, bool] = Field(default_factory=dict, description="What the send tracks: opens, clicks.")
    warnings: list[str] = Field(default_factory=list, description="What the send may cost (e.g. unsigned mail).")


class PreviewOut(Out):
    subject: str
    html: str
    text: str


class TestSendOut(Out):
    campaign: str
    addresses: list[str]
    status: Literal["queued"]
    test_id: str = Field("", description="Ask `GET /campaigns/{id}/tests/{test_id}` what the relay answered.")


class TestAnswerOut(Out):
    address: str
    outcome: Literal["sent", "failed"]
    code: int = Field(description="The relay's reply code (0: no answer at all).")
    reply: str = Field(description="What the relay (or the connection) said.")


class TestResultOut(Out):
    campaign: str
    test_id: str
    status: Literal["queued", "sent", "failed"] = Field(
        description="`queued`: not tried yet; `sent`: the relay accepted every address; `failed`: not all.")
    answers: list[TestAnswerOut] = Field(default_factory=list)


# ---------------------------------------------------------------- reports


class BounceCounts(Out):
    hard: int
    soft: int
    sender: int = Field(0, description="Refusals of the sender (DMARC, policy, reputation ...): nobody suppressed.")
    total: int = Field(description="Recipient bounces: hard + soft.")


class DomainRejections(Out):
    domain: str = Field(description="The receiving domain.")
    count: int
    status: str = Field(description="Its most frequent status code.")
    reason: str = Field(description="What that code means, e.g. `DMARC / authentication`.")
    statuses: dict[str, int]


class EngagementCounts(Out):
    unique: int
    total: int
    machine: int = Field(description="Opens or clicks by scanners and proxies, kept apart.")
    machine_unique: int


class ReportRates(Out):
    """Fractions from 0 to 1."""

    delivery_rate: float
    bounce_rate: float
    complaint_rate: float
    open_rate: float
    click_rate: float
    click_to_open_rate: float
    unsubscribe_rate: float


class LinkCounts(Out):
    link: int
    url: str
    total: int
    unique: int
    machine: int


class FailureReason(Out):
    reason: str = Field(description="SMTP code and enhanced status, e.g. `550 5.1.1`.")
    count: int


class FailureSummary(Out):
    total: int = Field(description="Recipients whose outcome is `failed`.")
    top: list[FailureReason] = Field(default_factory=list, description="Failures by reason, most first.")


class StalledOut(Out):
    """The send makes no progress: the relay refuses connections, times out or defers
    everything.  It goes on by itself once the relay answers again."""

    reason: str = Field(description="What the relay (or the connection) last said.")
    since: Timestamp


class ReportOut(Out):
    campaign: str
    status: str = Field(description="The report's view of the send.")
    campaign_status: str = Field(description="The campaign's own state (authoritative), or `deleted`.")
    reason: str = Field("", description="Why the campaign failed or was paused ('' otherwise).")
    stalled: StalledOut | None = Field(None, description="Set while the send makes no progress.")
    name: str
    subject: str
    planned: int
    planning_done: bool
    sent: int
    deferred: int
    failed: int
    skipped: int = Field(0, description="Members left out at send time (suppressed, invalid, opted out).")
    failures: FailureSummary | None = None
    progress: float = Field(description="Share of planned recipients with an outcome, 0 to 1.")
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    send_rate_per_second: float = Field(description="Messages per second over the send so far.")
    delivered: int
    bounced: BounceCounts
    rejected: list[DomainRejections] = Field(default_factory=list,
                                             description="Sender-side refusals per receiving domain, most first.")
    complained: int
    complaint_sources: dict[str, int] = Field(default_factory=dict, description="Complaints by source: fbl, ses, manual.")
    opened: EngagementCounts
    clicked: EngagementCounts
    unsubscribed: int
    rates: ReportRates
    links: list[LinkCounts]


class MinuteCounts(Out):
    minute: Timestamp = Field(description="Start of the minute.")
    sent: int
    failed: int
    delivered: int
    opens: int
    clicks: int
    bounces: int
    complaints: int
    unsubscribes: int


def report_view(report: dict[str, Any]) -> dict[str, Any]:
    """The service's report dict under the wire names (units in names)."""
    out = dict(report)
    out["send_rate_per_second"] = out.pop("send_rate", 0.0)
    return out


def report_wire(report: dict[str, Any]) -> dict[str, Any]:
    """The report as JSON-ready data in wire form (for bodies not sent through a model)."""
    return ReportOut.model_validate(report_view(report)).model_dump(mode="json")



class ResendOut(Out):
    campaign: str = Field(description="The follow-up draft (review it, then send it).")
    list: str = Field(description="The new list of the recipients.")
    recipients: int = Field(description="Subscribed members of that list.")
    exported: int = Field(description="Addresses the export found.")
    import_counts: dict[str, int]


# ---------------------------------------------------------------- guard


class GuardThresholdsOut(Out):
    """Rates are fractions (0.05 = 5%); a rate must pass its threshold once ``min_sample``
    messages were sent."""

    campaign_bounce: float
    campaign_complaint: float
    account_bounce: float
    account_complaint: float
    min_sample: int
    window_hours: int


class ScoreReason(Out):
    code: str
    points: int
    message: str


class GuardAction(Out):
    kind: str
    campaign: str = ""
    reason: str = ""
    at: Timestamp | None = None


class GuardStatusOut(Out):
    score: int = Field(description="0 to 100; 100 is clean.")
    reasons: list[ScoreReason]
    bounce_rate: float
    complaint_rate: float
    sent: int
    bounces: int
    complaints: int
    soft_bounces: int
    failed: int
    window_hours: int
    locked: bool
    thresholds: GuardThresholdsOut
    recent_actions: list[GuardAction]


class CampaignGuardThresholds(Out):
    bounce: float
    complaint: float
    min_sample: int


class CampaignGuardOut(Out):
    campaign: str
    sent: int
    bounces: int
    complaints: int
    soft_bounces: int
    failed: int
    bounce_rate: float
    complaint_rate: float
    tripped: bool
    reason: str = ""
    thresholds: CampaignGuardThresholds


class DnsRecordOut(Out):
    purpose: Literal["dkim", "spf", "dmarc", "mx"]
    type: Literal["TXT", "MX"]
    name: str = Field(description="Fully qualified, without the final dot.")
    value: str = Field(description="What to publish (an MX: `preference host`).")
    note: str
    status: Literal["pending", "ok", "missing", "wrong", "unknown"] = Field(
        description="What the last check found: `pending` never checked, `unknown` DNS gave no answer.")
    found: str = Field(description="What DNS had instead (for `wrong`), shortened.")
    zone_line: str = Field(description="The record as a zone-file line (long TXT values as several strings).")


class DkimKeyOut(Out):
    selector: str
    algorithm: Literal["rsa-sha256", "ed25519-sha256"]
    record: str = Field(description="The TXT value at `<selector>._domainkey.<domain>`.")


class SendingDomainOut(Out):
    domain: str
    state: Literal["pending", "verified", "failing"] = Field(
        description="`verified` while the last check found every record; `failing` once a later one missed one.")
    keys: list[DkimKeyOut]
    records: list[DnsRecordOut]
    failing: list[str] = Field(description="`purpose name` of each record the last check did not find as asked.")
    return_path_domain: str = Field(description="The domain of the VERP return path (SPF is checked there).")
    created_at: Timestamp
    checked_at: Timestamp | None = None
    verified_at: Timestamp | None = None
    created: bool = Field(False, description="True only in the answer of the request that added it.")


# ---------------------------------------------------------------- dead letters


class DeadLetterOut(Out):
    id: str
    queue: str
    message: str = Field(description="The message's name, or `?` when it cannot be read.")
    attempts: int
    error: str
    detail: str
    failed_at: Timestamp


class ReplayOut(Out):
    replayed: int
    not_found: int
