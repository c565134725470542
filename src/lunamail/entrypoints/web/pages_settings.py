"""The console's settings screen: the signed-in user's two-factor sign-in, the owner's
rule that everyone uses it, the guard's thresholds (admins change them) and the
installation's sending defaults (read-only).  Each part calls one use case."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from lunamail.app import accounts, guard
from lunamail.app import users as users_app
from lunamail.app.base import Permission
from lunamail.entrypoints.web.common import (
    ConsoleRoute,
    Viewer,
    ViewerDep,
    WriterDep,
    env_of,
    qr_svg,
    redirect,
    render,
)

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def _settings(request: Request, viewer: Viewer, *, status: int = 200, message: str = "",
              codes: list[str] | None = None) -> Response:
    env, actor = env_of(request), viewer.actor
    factor = users_app.two_factor_status(env, actor)
    return render(request, "settings.html", viewer, status=status, nav="settings", factor=factor,
                  qr=qr_svg(factor.pending.uri) if factor.pending else "", message=message, codes=codes or [],
                  thresholds=guard.thresholds(env, actor), defaults=accounts.sending_defaults(env, actor),
                  can_admin=actor.can(Permission.ADMIN), can_own=actor.can(Permission.OWN))


@router.get("/settings")
def settings_page(request: Request, viewer: ViewerDep) -> Response:
    return _settings(request, viewer)


@router.post("/settings/two-factor/start")
def start_two_factor(request: Request, viewer: WriterDep) -> Response:
    users_app.start_two_factor(env_of(request), viewer.actor)
    return redirect("/settings#two-factor", request)


@router.post("/settings/two-factor/confirm")
def confirm_two_factor(request: Request, viewer: WriterDep, code: Annotated[str, Form(max_length=64)]) -> Response:
    codes = users_app.confirm_two_factor(env_of(request), viewer.actor, code)
    return _settings(request, viewer, codes=codes)


@router.post("/settings/two-factor/stop")
def stop_two_factor(request: Request, viewer: WriterDep, code: Annotated[str, Form(max_length=64)]) -> Response:
    users_app.stop_two_factor(env_of(request), viewer.actor, code)
    return redirect("/settings#two-factor", request)


@router.post("/settings/two-factor/rule")
def two_factor_rule(request: Request, viewer: WriterDep, required: Annotated[str, Form(max_length=10)] = "") -> Response:
    users_app.require_two_factor(env_of(request), viewer.actor, required == "on")
    return redirect("/settings#two-factor", request)


@router.post("/settings/guard")
def set_thresholds(request: Request, viewer: WriterDep,
                   campaign_bounce: Annotated[float, Form(ge=0, le=100)],
                   campaign_complaint: Annotated[float, Form(ge=0, le=100)],
                   account_bounce: Annotated[float, Form(ge=0, le=100)],
                   account_complaint: Annotated[float, Form(ge=0, le=100)],
                   min_sample: Annotated[int, Form(ge=0, le=10_000_000)],
                   window_hours: Annotated[int, Form(ge=1, le=24 * 365)]) -> Response:
    """Rates are typed in per cent and stored as fractions."""
    guard.set_thresholds(env_of(request), viewer.actor, guard.ThresholdChanges(
        campaign_bounce=campaign_bounce / 100, campaign_complaint=campaign_complaint / 100,
        account_bounce=account_bounce / 100, account_complaint=account_complaint / 100,
        min_sample=min_sample, window_hours=window_hours))
    return redirect("/settings#guard", request)
