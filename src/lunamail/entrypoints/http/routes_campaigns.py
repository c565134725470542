"""Campaigns: drafts, preview, test send, send now, schedule, pause/resume/cancel.

The routes do what ``lunamail campaigns ...`` does: resolve list names to ids
and count the audience (the audience service owns both), call the campaigns
service, then publish the message it returned — only after the call
succeeded, so a refused send never reaches the workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from lunamail.domain.campaign_model import Campaign, CampaignStatus, allowed_actions
from lunamail.domain.messages import Later, Message
from lunamail.entrypoints.http.auth import AccountId
from lunamail.entrypoints.http.context import ApiContext, Ctx
from lunamail.entrypoints.http.errors import ApiError, ErrorRoute
from lunamail.entrypoints.http.pagination import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    PageOut,
    decode_cursor,
    page,
)
from lunamail.services.audience import api as audience
from lunamail.services.audience.errors import NotFound as ListNotFound
from lunamail.services.campaigns import api as campaigns
from lunamail.services.campaigns.errors import IllegalTransition, InvalidTemplate

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


class PreviewSubscriber(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Address
    name: str = Field("", max_length=200)
    fields: dict[str, Any] = Field(default_factory=dict)


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subscriber: PreviewSubscriber | None = Field(None, description="Render as this person (default: a sample).")


class PreviewOut(BaseModel):
    subject: str
    html: str
    text: str


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


@contextmanager
def _service_errors() -> Iterator[None]:
    """Give the two campaign errors whose detail lives in attributes their full details
    (the generic mapping in ``errors.py`` only knows ``fields`` and ``reasons``)."""
    try:
        yield
    except InvalidTemplate as exc:
        details = {"part": exc.part, "line": exc.line, "message": exc.message, "fields": dict(exc.fields)}
        raise ApiError(422, "invalid_template", str(exc), details) from exc
    except IllegalTransition as exc:
        details = {"status": str(exc.from_status), "action": str(exc.action)}
        raise ApiError(409, "illegal_transition", str(exc), details) from exc


def view(c: Campaign, *, bodies: bool = True) -> dict[str, Any]:
    """A campaign as clients see it, with the actions its state allows (for UIs)."""
    doc = c.to_dict()
    for key in _INTERNAL if bodies else (*_INTERNAL, *_BODIES):
        doc.pop(key, None)
    doc["actions"] = [str(a) for a in allowed_actions(c.status)]
    return doc


def _list_ids(ctx: ApiContext, account: str, refs: Sequence[str]) -> list[str]:
    """List names or ids -> ids (deduplicated), or 422 naming every unknown entry."""
    ids: list[str] = []
    unknown: dict[str, str] = {}
    for n, ref in enumerate(refs):
        try:
            list_id = str(audience.get_list(ctx.deps, account, ref)["id"])
        except ListNotFound:
            unknown[f"lists[{n}]"] = f"no list {ref!r}"
            continue
        if list_id not in ids:
            ids.append(list_id)
    if unknown:
        raise ApiError(422, "invalid_input", "unknown list", {"fields": unknown})
    return ids


def _audience_size(ctx: ApiContext, account: str, c: Campaign) -> int:
    """Subscribed members across the campaign's lists (an upper bound: someone on two lists
    counts twice here, gets one mail).  A list deleted since the draft was saved refuses
    the send as the other pre-send checks do."""
    total = 0
    gone: list[str] = []
    for list_id in c.lists:
        try:
            total += int(audience.count_by_status(ctx.deps, account, list_id).get("subscribed", 0))
        except ListNotFound:
            gone.append(f"list {list_id!r} no longer exists")
    if gone:
        raise ApiError(422, "pre_send_check_failed", "the campaign cannot be sent", {"reasons": gone})
    return total


@router.post("", status_code=201, summary="Create a draft campaign")
def create_campaign(body: CampaignCreate, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    lists = _list_ids(ctx, account, body.lists)
    with _service_errors():
        c = campaigns.create_draft(
            ctx.deps,
            account,
            name=body.name,
            subject=body.subject,
            from_name=body.from_name,
            from_email=body.from_email,
            reply_to=body.reply_to,
            html=body.html,
            text=body.text,
            lists=lists,
            campaign_id=body.id,
        )
    return view(c)


@router.get("", response_model=PageOut, summary="Campaigns, newest first (without their bodies)")
def list_campaigns(
    ctx: Ctx,
    account: AccountId,
    status: Annotated[CampaignStatus | None, Query(description="Only this status.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    scope = f"campaigns:{status or ''}"
    inner = decode_cursor(ctx.deps, account, scope, cursor)
    found = campaigns.list_campaigns(ctx.deps, account, status=status, limit=limit, cursor=inner)
    return page(ctx.deps, account, scope, [view(c, bodies=False) for c in found.items], found.cursor)


@router.get("/{campaign_id}", summary="One campaign, with its content")
def get_campaign(campaign_id: str, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    return view(campaigns.get(ctx.deps, account, campaign_id))


@router.patch("/{campaign_id}", summary="Change a draft")
def update_campaign(campaign_id: str, body: CampaignUpdate, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    lists = None if body.lists is None else _list_ids(ctx, account, body.lists)
    with _service_errors():
        c = campaigns.update_draft(
            ctx.deps,
            account,
            campaign_id,
            name=body.name,
            subject=body.subject,
            from_name=body.from_name,
            from_email=body.from_email,
            reply_to=body.reply_to,
            html=body.html,
            text=body.text,
            lists=lists,
        )
    return view(c)


@router.delete("/{campaign_id}", status_code=204, summary="Delete a draft, cancelled or failed campaign")
def delete_campaign(campaign_id: str, ctx: Ctx, account: AccountId) -> Response:
    with _service_errors():
        campaigns.delete(ctx.deps, account, campaign_id)
    return Response(status_code=204)


@router.post("/{campaign_id}/preview", response_model=PreviewOut, summary="Render for one (or a sample) subscriber")
def preview_campaign(
    campaign_id: str, ctx: Ctx, account: AccountId, body: PreviewIn | None = None
) -> dict[str, str]:
    who = body.subscriber.model_dump() if body is not None and body.subscriber is not None else None
    with _service_errors():
        out = campaigns.preview(ctx.deps, account, campaign_id, who)
    return {"subject": out.subject, "html": out.html, "text": out.text}


@router.post("/{campaign_id}/test", status_code=202, summary="Send a test copy (not counted in reports)")
def test_campaign(campaign_id: str, body: TestIn, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    with _service_errors():
        cmd = campaigns.test_send(ctx.deps, account, campaign_id, body.addresses)
    ctx.emit([cmd])
    return {"campaign": campaign_id, "addresses": list(cmd.addresses), "status": "queued"}


@router.post("/{campaign_id}/send", status_code=202, summary="Start sending now")
def send_campaign(campaign_id: str, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    c = campaigns.get(ctx.deps, account, campaign_id)
    size = _audience_size(ctx, account, c)
    with _service_errors():
        started = campaigns.send_now(ctx.deps, account, campaign_id, audience_size=size)
    ctx.emit([started])
    return {**view(campaigns.get(ctx.deps, account, campaign_id)), "audience_size": size}


@router.post("/{campaign_id}/schedule", summary="Schedule (or move) the send")
def schedule_campaign(campaign_id: str, body: ScheduleIn, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    c = campaigns.get(ctx.deps, account, campaign_id)
    size = _audience_size(ctx, account, c)
    with _service_errors():
        cmd = campaigns.schedule(ctx.deps, account, campaign_id, body.at, tz=body.tz, audience_size=size)
    delay = max(0.0, float(cmd.at or 0.0) - ctx.deps.clock.now())
    ctx.emit([Later(cmd, delay)])
    return view(campaigns.get(ctx.deps, account, campaign_id))


def _transition(ctx: Ctx, account: str, campaign_id: str, act: Callable[[], Message]) -> dict[str, Any]:
    """Pause, resume or cancel: the service returns the event, we publish it and show the campaign."""
    with _service_errors():
        event = act()
    ctx.emit([event])
    return view(campaigns.get(ctx.deps, account, campaign_id))


@router.post("/{campaign_id}/pause", summary="Pause a sending campaign")
def pause_campaign(
    campaign_id: str, ctx: Ctx, account: AccountId, body: PauseIn | None = None
) -> dict[str, Any]:
    reason = body.reason if body else ""
    return _transition(ctx, account, campaign_id, lambda: campaigns.pause(ctx.deps, account, campaign_id, reason))


@router.post("/{campaign_id}/resume", summary="Resume a paused campaign")
def resume_campaign(campaign_id: str, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    return _transition(ctx, account, campaign_id, lambda: campaigns.resume(ctx.deps, account, campaign_id))


@router.post("/{campaign_id}/cancel", summary="Cancel a scheduled, sending or paused campaign")
def cancel_campaign(campaign_id: str, ctx: Ctx, account: AccountId) -> dict[str, Any]:
    return _transition(ctx, account, campaign_id, lambda: campaigns.cancel(ctx.deps, account, campaign_id))
