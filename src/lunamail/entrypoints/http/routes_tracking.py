"""Public tracking routes: open pixel, click redirect, unsubscribe, web view.

No API key: the signed token in the URL is the authorisation.  Mount ``router``
at the root (outside ``/v1``); ``create_tracking_app`` builds an app with only
these routes (a tracking-only function, or tests).  A bad token is a 404 page,
never a redirect, so a forged link cannot send anyone anywhere.

``GET`` never changes anything (mail scanners follow every GET link); an
unsubscribe happens only on ``POST``: RFC 8058 one-click from a mail client
(body ``List-Unsubscribe=One-Click``) or the confirmation page's form.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse

from lunamail.domain.tracking import UnsubscribeScope
from lunamail.entrypoints.http.context import ApiContext, Ctx, Publish
from lunamail.entrypoints.http.errors import ErrorRoute, install_error_handlers
from lunamail.ports.deps import Deps
from lunamail.services.tracking import api as tracking
from lunamail.services.tracking import pages

router = APIRouter(tags=["tracking"], route_class=ErrorRoute, include_in_schema=False)

# A transparent 1x1 GIF (42 bytes).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

_NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "0",
}
_PAGE_HEADERS = {
    **_NO_CACHE,
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",  # the URL holds a token
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}
# The web view is tenant HTML on our origin: images and styles may come from anywhere, but no
# script, plugin, form or framing.
_VIEW_HEADERS = {
    **_PAGE_HEADERS,
    "Content-Security-Policy": (
        "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
}


def _hit(request: Request) -> tracking.Hit:
    return tracking.Hit(
        method=request.method,
        user_agent=request.headers.get("user-agent", ""),
        ip=request.client.host if request.client else "",
        headers=request.headers,
    )


def _confirm(target: tracking.UnsubscribeTarget) -> HTMLResponse:
    html = pages.confirm_page(email=target.email, sender=target.sender, has_list=bool(target.list))
    return HTMLResponse(html, headers=_PAGE_HEADERS)


def _not_found() -> HTMLResponse:
    return HTMLResponse(pages.not_found_page(), status_code=404, headers=_PAGE_HEADERS)


@router.api_route("/o/{token}.gif", methods=["GET", "HEAD"])
def open_pixel(token: str, request: Request, ctx: Ctx) -> Response:
    """Always the GIF (a broken image would only draw attention); counted when the token is good."""
    opened = tracking.record_open(ctx.deps, token, _hit(request))
    if opened is not None:
        ctx.emit([opened])
    return Response(PIXEL_GIF, media_type="image/gif", headers=_NO_CACHE)


@router.api_route("/c/{token}", methods=["GET", "HEAD"])
def click(token: str, request: Request, ctx: Ctx) -> Response:
    """302 to the signed URL; HEAD redirects too but is counted as a machine."""
    clicked = tracking.record_click(ctx.deps, token, _hit(request))
    if clicked is None:
        return _not_found()
    ctx.emit([clicked])
    return RedirectResponse(clicked.url, status_code=302, headers={
        "Cache-Control": _NO_CACHE["Cache-Control"], "Referrer-Policy": "no-referrer"})


@router.get("/u/{token}")
def unsubscribe_page(token: str, ctx: Ctx) -> Response:
    """The confirmation page; changes nothing."""
    target = tracking.unsubscribe_target(ctx.deps, token)
    if target is None:
        return _not_found()
    return _confirm(target)


@router.post("/u/{token}")
def unsubscribe_post(
    token: str,
    ctx: Ctx,
    one_click: Annotated[str | None, Form(alias="List-Unsubscribe")] = None,
    action: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form()] = None,
) -> Response:
    """RFC 8058 one-click (200, tiny body, no cookie, no redirect), or the page's form."""
    target = tracking.unsubscribe_target(ctx.deps, token)
    if one_click is not None and one_click.strip().lower() == "one-click":
        if target is None:
            return PlainTextResponse("Not found.\n", status_code=404, headers=_NO_CACHE)
        ctx.emit([tracking.unsubscribe(ctx.deps, target, scope="list", method="one-click")])
        return PlainTextResponse("Unsubscribed.\n", headers=_NO_CACHE)
    if target is None:
        return _not_found()
    if action != "confirm":  # a bare POST: show the page, change nothing
        return _confirm(target)
    chosen: UnsubscribeScope = "all" if scope == "all" else "list"
    done = tracking.unsubscribe(ctx.deps, target, scope=chosen, method="page")
    ctx.emit([done])
    html = pages.done_page(email=done.email, sender=target.sender, scope=done.scope)
    return HTMLResponse(html, headers=_PAGE_HEADERS)


@router.get("/v/{token}")
def web_view(token: str, ctx: Ctx) -> Response:
    """The campaign as this recipient's online version."""
    html = tracking.web_view(ctx.deps, token)
    if html is None:
        return HTMLResponse(pages.unavailable_page(), status_code=404, headers=_PAGE_HEADERS)
    return HTMLResponse(html, headers=_VIEW_HEADERS)


def create_tracking_app(deps: Deps, publish: Publish) -> FastAPI:
    """An app with only the public tracking routes (plus ``/health``): what a tracking-only
    deployment serves, and what the tests drive.  Same context and error shape as
    :func:`lunamail.entrypoints.http.app.create_app`."""
    app = FastAPI(title="Lunamail tracking", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.lunamail = ApiContext(deps=deps, publish=publish)
    install_error_handlers(app)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(router)
    return app
