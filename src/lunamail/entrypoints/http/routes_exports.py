"""Acting on a campaign's outcomes: export the recipients of one outcome, resend to the
non-openers (what ``lunamail campaigns export|resend`` do)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from lunamail.app import reports
from lunamail.entrypoints.http.auth import Acting
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.entrypoints.http.schemas import ResendOut, error_responses

router = APIRouter(
    prefix="/campaigns/{campaign_id}", tags=["reports"], route_class=ErrorRoute, responses=error_responses(404)
)

Which = Literal["opened", "clicked", "non-openers", "bounced", "unsubscribed"]


class ResendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Literal["non-openers"] = "non-openers"
    subject: str | None = Field(None, max_length=998, description='Default: "Re: " and the original subject.')


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "One `email` column."}},
    summary="The recipients of one outcome, as CSV",
)
def export_recipients(
    campaign_id: str,
    ctx: Ctx,
    actor: Acting,
    which: Annotated[Which, Query(description="Which recipients.")],
) -> StreamingResponse:
    rows = reports.export(ctx.env, actor, campaign_id, which)  # 404 before the stream starts
    return StreamingResponse(
        (chunk.encode() for chunk in reports.csv_chunks(rows)),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{campaign_id}-{which}.csv"'},
    )


@router.post(
    "/resend",
    status_code=201,
    response_model=ResendOut,
    responses=error_responses(409),
    summary="A list of the non-openers and a follow-up draft to it (review it, then send it)",
)
def resend_campaign(campaign_id: str, ctx: Ctx, actor: Acting, body: ResendIn | None = None) -> dict[str, Any]:
    req = body or ResendIn.model_validate({})
    return asdict(reports.resend(ctx.env, actor, campaign_id, to=req.to, subject=req.subject))
