"""The reputation guard: the account's score, a campaign's guard numbers, the thresholds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from lunamail.app import campaigns, guard
from lunamail.domain.guard import MAX_WINDOW_HOURS
from lunamail.entrypoints.http.auth import Acting
from lunamail.entrypoints.http.context import Ctx
from lunamail.entrypoints.http.errors import ErrorRoute
from lunamail.entrypoints.http.schemas import (
    CampaignGuardOut,
    GuardStatusOut,
    GuardThresholdsOut,
    error_responses,
)

router = APIRouter(prefix="/guard", tags=["guard"], route_class=ErrorRoute)

Fraction = Field(None, gt=0, le=1, description="A fraction: 0.05 = 5%.")


class ThresholdsIn(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")
    campaign_bounce: float | None = Fraction
    campaign_complaint: float | None = Fraction
    account_bounce: float | None = Fraction
    account_complaint: float | None = Fraction
    min_sample: int | None = Field(None, ge=1, le=10_000_000)
    window_hours: int | None = Field(None, ge=1, le=MAX_WINDOW_HOURS)


@router.get("", response_model=GuardStatusOut, summary="The account's reputation score and rates")
def guard_status(ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return guard.status(ctx.env, actor)


@router.get(
    "/campaigns/{campaign_id}",
    response_model=CampaignGuardOut,
    responses=error_responses(404),
    summary="A campaign's guard numbers and whether it tripped",
)
def campaign_guard(campaign_id: str, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    campaigns.get(ctx.env, actor, campaign_id)  # 404 for unknown (and other accounts') ids
    campaign: dict[str, Any] = guard.status(ctx.env, actor, campaign=campaign_id)["campaign"]
    return campaign


@router.get("/thresholds", response_model=GuardThresholdsOut, summary="When the guard acts")
def get_thresholds(ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return guard.thresholds(ctx.env, actor).to_dict()


@router.patch("/thresholds", response_model=GuardThresholdsOut, summary="Change some thresholds")
def set_thresholds(body: ThresholdsIn, ctx: Ctx, actor: Acting) -> dict[str, Any]:
    return guard.set_thresholds(ctx.env, actor, guard.ThresholdChanges(**body.model_dump())).to_dict()
