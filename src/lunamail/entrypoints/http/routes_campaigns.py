"""Campaigns: drafts, preview, test send, send now, schedule, pause/resume/cancel.

Each route calls one use case of :mod:`lunamail.app.campaigns` (which resolves list
names, counts the audience and emits the messages) and shapes its result.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from lunamail.app import campaigns, reports
from lunamail.domain.campaign_model import Campaign, CampaignStatus, allowed_actions
from lunamail.entrypoints.http.auth import Acting
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.entrypoints.http.pagination import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    decode_cursor,
    page,
)
from lunamail.entrypoints.http.schemas import (
    CampaignOut,
    CampaignSendOut,
    CampaignSummary,
    Out,
    Page,
    PreviewOut,
    TestResultOut,
    TestSendOut,
    Timestamp,
    error_responses,
)

router = APIRouter(prefix="/campaigns", tags=["campaigns"], route_class=ErrorRoute)

# Kept out of every response: which trigger started a send is bookkeeping of the service.
_INTERNAL = ("send_token", "account")
# Bodies can be large (up to ~350 KB): a listing leaves them out, GET of one campaign has them.
_BODIES = ("html", "text")

Address = Annotated[str, Field(min_length=3, max_length=320)]


class CampaignCreate(BaseModel):
    """A draft may be incomplete; the pre-send checks say what is missing when it is sent."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    subject: str = Field("", max_length=998)
    from_name: str = Field("", max_length=200)
    from_email: str = Field("", max_length=320)
    reply_to: str = Field("", max_length=320)
    html: str = ""
    text: str | None = Field(None, description="Text part; omitted or blank: derived from the HTML.")
    lists: list[str] = Field(default_factory=list, max_length=50, description="List ids or names.")
    track_opens: bool | None = Field(None, description="Open tracking; omitted: the installation's default.")
    track_clicks: bool | None = Field(None, description="Click tracking; omitted: the installation's default.")
    headers: dict[str, str] | None = Field(None, max_length=20, description="Extra headers, one line each.")
    id: str | None = Field(
        None, min_length=1, max_length=64, description="Choose the id (makes a retried create safe)."
    )


class CampaignUpdate(BaseModel):
    """Only the fields given change; ``text: ""`` goes back to a text part derived from the HTML."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    subject: str | None = Field(None, max_length=998)
    from_name: str | None = Field(None, max_length=200)
    from_email: str | None = Field(None, max_length=320)
    reply_to: str | None = Field(None, max_length=320)
    html: str | None = None
    text: str | None = None
    lists: list[str] | None = Field(None, max_length=50)
    track_opens: bool | None = None
    track_clicks: bool | None = None
    headers: dict[str, str] | None = Field(None, max_length=20)


class PreviewSubscriber(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Address
    name: str = Field("", max_length=200)
    fields: dict[str, Any] = Field(default_factory=dict)


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subscriber: PreviewSubscriber | None = Field(None, description="Render as this person (default: a sample).")


class TestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    addresses: list[Address] = Field(min_length=1, max_length=20)


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str = Field(
        min_length=1,
        max_length=100,
        description="ISO 8601 with an offset (2030-06-01T09:00:00+02:00), or a local time with `tz`.",
    )
    tz: str | None = Field(None, max_length=64, description="Time zone name, e.g. Europe/Paris.")


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=500)


def view(c: Campaign, *, bodies: bool = True) -> dict[str, Any]:
    """A campaign as clients see it, with the actions its state allows (for UIs)."""
    doc = c.to_dict()
    for key in _INTERNAL if bodies else (*_INTERNAL, *_BODIES):
        doc.pop(key, None)
    doc["actions"] = [str(a) for a in allowed_actions(c.status)]
    return doc


@router.post(
    "",
    status_code=201,
    response_model=CampaignOut,
    responses=error_responses(409),
    summary="Create a draft campaign",
    description="With a chosen `id` the create is idempotent: a retry with the same body answers "
    "201 with the campaign already saved; another body under that id is 409 `conflict`.",
)
def create_campaign(body: CampaignCreate, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return view(campaigns.create(ctx.env, actor, campaigns.NewCampaign(**body.model_dump())))


@router.get("", response_model=Page[CampaignSummary], summary="Campaigns, newest first (without their bodies)")
def list_campaigns(
    ctx: Ctx,
    actor: Acting,
    status: Annotated[CampaignStatus | None, Query(description="Only this status.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    scope = f"campaigns:{status or ''}"
    inner = decode_cursor(ctx.deps, actor.account, scope, cursor)
    found = campaigns.list_campaigns(ctx.env, actor, status=status, limit=limit, cursor=inner)
    return page(ctx.deps, actor.account, scope, [view(c, bodies=False) for c in found.items], found.next_cursor)


@router.get("/{campaign_id}", response_model=CampaignOut, responses=error_responses(404), summary="One campaign, with its content")
def get_campaign(campaign_id: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return view(campaigns.get(ctx.env, actor, campaign_id))


@router.patch("/{campaign_id}", response_model=CampaignOut, responses=error_responses(404, 409), summary="Change a draft")
def update_campaign(campaign_id: str, body: CampaignUpdate, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return view(campaigns.edit(ctx.env, actor, campaign_id, campaigns.CampaignChanges(**body.model_dump())))


@router.delete("/{campaign_id}", status_code=204, responses=error_responses(404, 409), summary="Delete a draft, cancelled or failed campaign")
def delete_campaign(campaign_id: str, ctx: Ctx, actor: Acting) -> Response:
    campaigns.delete(ctx.env, actor, campaign_id)
    return Response(status_code=204)


@router.post("/{campaign_id}/preview", response_model=PreviewOut, responses=error_responses(404), summary="Render for one (or a sample) subscriber")
def preview_campaign(
    campaign_id: str, ctx: Ctx, actor: Acting, body: PreviewIn | None = None
) -> dict[str, str]:
    who = body.subscriber.model_dump() if body is not None and body.subscriber is not None else None
    out = campaigns.preview(ctx.env, actor, campaign_id, who)
    return {"subject": out.subject, "html": out.html, "text": out.text}


@router.post("/{campaign_id}/test", status_code=202, response_model=TestSendOut, responses=error_responses(404), summary="Send a test copy (not counted in reports)")
def test_campaign(campaign_id: str, body: TestIn, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    queued = campaigns.test(ctx.env, actor, campaign_id, body.addresses)
    return {"campaign": campaign_id, "addresses": list(queued.addresses), "status": "queued",
            "test_id": queued.test_id}


@router.get("/{campaign_id}/tests/{test_id}", response_model=TestResultOut, responses=error_responses(404),
            summary="What the relay answered for each address of a test send")
def test_campaign_result(campaign_id: str, test_id: Annotated[str, Path(max_length=64)], ctx: Ctx,
                         actor: Acting) -> dict[str, Any]:
    out = campaigns.test_result(ctx.env, actor, campaign_id, test_id)
    return {"campaign": out.campaign, "test_id": out.test_id, "status": out.status,
            "answers": [{"address": a.address, "outcome": a.outcome, "code": a.code, "reply": a.reply}
                        for a in out.answers]}


@router.post("/{campaign_id}/send", status_code=202, response_model=CampaignSendOut, responses=error_responses(404, 409), summary="Start sending now")
def send_campaign(campaign_id: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    started = campaigns.send(ctx.env, actor, campaign_id)
    return {**view(started.campaign), "audience_size": started.audience_size,
            "tracking": dict(started.tracking or {}), "warnings": list(started.warnings)}


@router.post("/{campaign_id}/schedule", response_model=CampaignOut, responses=error_responses(404, 409), summary="Schedule (or move) the send")
def schedule_campaign(campaign_id: str, body: ScheduleIn, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return view(campaigns.schedule(ctx.env, actor, campaign_id, body.at, tz=body.tz).campaign)


@router.post("/{campaign_id}/pause", response_model=CampaignOut, responses=error_responses(404, 409), summary="Pause a sending campaign")
def pause_campaign(
    campaign_id: str, ctx: Ctx, actor: Acting, body: PauseIn | None = None
) -> dict[str, Any]:
    return view(campaigns.pause(ctx.env, actor, campaign_id, reason=body.reason if body else ""))


@router.post("/{campaign_id}/resume", response_model=CampaignOut, responses=error_responses(404, 409), summary="Resume a paused campaign")
def resume_campaign(campaign_id: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return view(campaigns.resume(ctx.env, actor, campaign_id))


@router.post("/{campaign_id}/cancel", response_model=CampaignOut, responses=error_responses(404, 409), summary="Cancel a scheduled, sending or paused campaign")
def cancel_campaign(campaign_id: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return view(campaigns.cancel(ctx.env, actor, campaign_id))


class RetryOut(Out):
    campaign: CampaignOut
    recipients: int = Field(description="Recipients whose last outcome is a retryable failure: sent again "
                            "(0: nothing to retry, nothing changed).")


@router.post("/{campaign_id}/retry-failed", status_code=202, response_model=RetryOut,
             responses=error_responses(404, 409),
             summary="Send again to the recipients whose last outcome is a retryable failure")
def retry_failed(campaign_id: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    out = campaigns.retry_failed(ctx.env, actor, campaign_id)
    return {"campaign": view(out.campaign), "recipients": out.recipients}


LedgerStatus = Annotated[
    str | None, Query(pattern="^(planned|sent|deferred|failed|skipped)$", description="Only this outcome.")
]


class LedgerLine(Out):
    """One planned recipient's current outcome (or why a member was left out: ``skipped``)."""

    email: str
    status: Literal["planned", "sent", "deferred", "failed", "skipped"]
    at: Timestamp | None = None
    code: int | None = Field(None, description="SMTP reply code (failed, deferred).")
    enhanced: str | None = Field(None, description="RFC 3463 enhanced status, e.g. 5.1.1 ('' when none).")
    reply: str | None = Field(None, description="What the relay said (sent: code and its queue id).")
    attempts: int | None = Field(None, description="Deferred: tries so far.")
    retryable: bool | None = Field(None, description="Failed: a temporary failure that ran out of attempts "
                                   "(`retry-failed` sends it again).")
    reason: str | None = Field(None, description="Skipped: why (suppressed, invalid, opted out...).")


@router.get("/{campaign_id}/recipients", response_model=Page[LedgerLine], responses=error_responses(404),
            summary="The per-recipient ledger: each recipient's current outcome")
def list_ledger(
    campaign_id: str, ctx: Ctx, actor: Acting, status: LedgerStatus = None,
    limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
) -> dict[str, Any]:
    scope = f"recipients:{campaign_id}:{status or ''}"
    inner = decode_cursor(ctx.deps, actor.account, scope, cursor)
    found = reports.recipients(ctx.env, actor, campaign_id, status=status, limit=limit, cursor=inner)
    return page(ctx.deps, actor.account, scope, found.items, found.next_cursor)


@router.get("/{campaign_id}/recipients.csv", summary="The per-recipient ledger as CSV (streamed)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "One line per recipient."},
                       **error_responses(404)})
def export_ledger(campaign_id: str, ctx: Ctx, actor: Acting, status: LedgerStatus = None) -> StreamingResponse:
    lines = reports.recipients_csv(ctx.env, actor, campaign_id, status=status)
    return StreamingResponse(lines, media_type="text/csv")
