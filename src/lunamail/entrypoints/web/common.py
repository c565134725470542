"""What every console page needs: the session, CSRF, rendering and error pages.

A page route takes ``viewer: Viewer`` (a signed-in session; otherwise a redirect to the
sign-in page) and a route that changes something takes ``viewer: Writer`` (the same,
plus a CSRF token that matches the session's, from the ``csrf`` form field or the
``X-CSRF-Token`` header htmx sends).  Service errors become an error page (or, for an
htmx request, an error fragment) with the status the API would give.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from lunamail.app import signin
from lunamail.app.base import Actor, Env
from lunamail.app.errors import describe
from lunamail.app.signin import Session, csrf_matches
from lunamail.entrypoints.http.context import ApiContext
from lunamail.entrypoints.http.errors import ApiError

log = logging.getLogger("lunamail.console")

COOKIE = "lunamail_session"
HERE = Path(__file__).parent
STATIC = HERE / "static"
CSP = ("default-src 'self'; img-src 'self' data: https: http:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")

env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                  trim_blocks=True, lstrip_blocks=True)


def _when(ts: Any) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pct(value: Any) -> str:
    try:
        return f"{float(value) * 100:.1f}%"
    except (TypeError, ValueError):
        return "-"


env.filters["when"] = _when
env.filters["pct"] = _pct


@dataclass(frozen=True)
class Viewer:
    """The signed-in person of a request."""

    actor: Actor
    session: Session
    cookie: str

    @property
    def account(self) -> str:
        return self.actor.account

    @property
    def csrf(self) -> str:
        return self.session.csrf


class NeedsSignIn(Exception):
    pass


class CsrfRefused(Exception):
    pass


def ctx_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.lunamail
    return ctx


def env_of(request: Request) -> Env:
    return ctx_of(request).env


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _viewer(request: Request) -> Viewer:
    cookie = request.cookies.get(COOKIE)
    found = signin.current(ctx_of(request).deps, cookie)
    if found is None or cookie is None:
        raise NeedsSignIn()
    session, actor = found
    return Viewer(actor, session, cookie)


async def _writer(request: Request) -> Viewer:
    viewer = _viewer(request)
    sent = request.headers.get("X-CSRF-Token")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not csrf_matches(viewer.session, sent):
        raise CsrfRefused()
    return viewer


ViewerDep = Annotated[Viewer, Depends(_viewer)]
WriterDep = Annotated[Viewer, Depends(_writer)]


def secure_request(request: Request) -> bool:
    """Behind HTTPS (directly, or a proxy saying so): the cookie gets ``Secure``."""
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto.split(",")[0].strip() == "https" or ctx_of(request).deps.settings.base_url.startswith("https:")


def set_session_cookie(response: Response, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(COOKIE, value, max_age=max_age, httponly=True, samesite="lax",
                        secure=secure_request(request), path="/")


def render(request: Request, name: str, viewer: Viewer | None = None, status: int = 200,
           **values: Any) -> HTMLResponse:
    html = env.get_template(name).render(request=request, viewer=viewer, **values)
    return HTMLResponse(html, status_code=status, headers=page_headers())


def page_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "Cache-Control": "no-store",
            "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff"}


def redirect(url: str, request: Request | None = None) -> Response:
    """303 to ``url``; for an htmx request an ``HX-Redirect`` (htmx would swap the page in)."""
    if request is not None and is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def error_message(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    details: Mapping[str, Any] = getattr(exc, "details", None) or {}
    fields = getattr(exc, "fields", None) or details.get("fields")
    reasons = getattr(exc, "reasons", None) or details.get("reasons")
    parts = [str(message)]
    if isinstance(fields, Mapping) and fields:
        parts.extend(f"{k}: {v}" for k, v in fields.items())
    if isinstance(reasons, list | tuple) and reasons:
        parts.extend(str(r) for r in reasons)
    return "; ".join(dict.fromkeys(parts))


class ConsoleRoute(APIRoute):
    """Console routes answer in HTML: sign-in redirects, CSRF refusals and service errors
    become pages (or fragments for htmx) with the API's status codes."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except NeedsSignIn:
                if is_htmx(request) or request.method != "GET":
                    return Response("sign in first", status_code=401,
                                    headers={"HX-Redirect": "/login", **page_headers()})
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            except CsrfRefused:
                return _problem(request, 403, "This form expired or did not come from this console: "
                                "reload the page and try again.")
            except ApiError as exc:
                return _problem(request, exc.status, exc.message)
            except RequestValidationError as exc:  # a form field out of its bounds
                names = sorted({str(e.get("loc", ("", "?"))[-1]) for e in exc.errors()})
                return _problem(request, 422, "These fields are wrong: " + ", ".join(names))
            except Exception as exc:
                problem = describe(exc)
                if problem is None:
                    log.error("console error on %s %s", request.method, request.url.path, exc_info=exc)
                    return _problem(request, 500, "Something went wrong on our side; the log has details.")
                return _problem(request, problem.status, error_message(exc))
            for key, value in page_headers().items():
                response.headers.setdefault(key, value)
            return response

        return guarded


def _problem(request: Request, status: int, message: str) -> HTMLResponse:
    if is_htmx(request):
        html = env.get_template("_error.html").render(message=message, status=status)
        # htmx swaps 2xx only: say where the error goes and let it swap
        return HTMLResponse(html, status_code=status,
                            headers={"HX-Retarget": "#errors", "HX-Reswap": "innerHTML", **page_headers()})
    viewer = None
    try:
        viewer = _viewer(request)
    except NeedsSignIn:
        viewer = None
    return render(request, "error.html", viewer, status=status, message=message, code=status)


def qr_svg(text: str) -> str:
    """``text`` as a QR code, inline SVG (no image request, no script)."""
    import segno

    svg: str = segno.make(text, error="m").svg_inline(scale=4)
    return svg
