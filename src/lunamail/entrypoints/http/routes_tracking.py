"""Public tracking routes: open pixel, click redirect, unsubscribe, web view.

No API key: the signed token in the URL is the authorisation.  Mount ``router``
at the root (outside ``/v1``); ``create_tracking_app`` builds an app with only
these routes (a tracking-only function, or tests).  A bad token is a 404 page,
never a redirect, so a forged link cannot send anyone anywhere.

``GET`` never changes anything (mail scanners follow every GET link); an
unsubscribe happens only on ``POST``: RFC 8058 one-click from a mail client
(body ``List-Unsubscribe=One-Click``) or the confirmation page's form.

Opens and clicks are the hot path (thousands per second after a send): their
routes are ``async`` (no threadpool hop; token check and classification are a
few microseconds of CPU), answer with prebuilt headers, and publish through a
:class:`GroupCommit`: the events of all requests that arrive while one write is
in progress go out together in the next ``publish`` (one queue transaction), and
each request is answered only after the write holding its event returned, so an
answered open or click is never lost.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from lunamail.app import tracking
from lunamail.domain.messages import Later, Message
from lunamail.domain.tracking import UnsubscribeScope
from lunamail.entrypoints.http.context import ApiContext, Ctx, Publish
from lunamail.entrypoints.http.errors import ErrorRoute, install_error_handlers
from lunamail.ports.deps import Deps

log = logging.getLogger("lunamail.tracking")

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
# script, plugin, form or framing; ``sandbox`` also stops automatic navigation (a
# ``<meta http-equiv="refresh">``, which the service strips too) while links still work.
_VIEW_HEADERS = {
    **_PAGE_HEADERS,
    "Content-Security-Policy": (
        "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'; sandbox allow-popups allow-popups-to-escape-sandbox "
        "allow-top-navigation-by-user-activation"
    ),
}


def _hit(request: Request) -> tracking.Hit:
    return tracking.Hit(
        method=request.method,
        user_agent=request.headers.get("user-agent", ""),
        ip=request.client.host if request.client else "",
        headers=request.headers,
    )


class GroupCommit:
    """Publishes the events of concurrent requests together, each request awaiting the
    write that holds its own event.

    There is no timer: the first event starts a write at once (in a thread, so the loop
    keeps serving); events that arrive meanwhile wait for the next write, which starts
    as soon as the current one returns.  Under load each write carries what arrived
    during the previous one; when idle a request pays one write, as before.  A failed
    write fails exactly the requests whose events it held."""

    def __init__(self, publish: Publish, max_batch: int = 1000) -> None:
        self.loop = asyncio.get_running_loop()  # its futures and writer belong to this loop
        self.publish = publish
        self._max_batch = max_batch
        self._pending: list[tuple[Message | Later, Callable[[BaseException | None], None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def emit(self, message: Message | Later) -> None:
        """Return once ``message`` is published (durable); raise what publishing raised."""
        done: asyncio.Future[None] = self.loop.create_future()

        def finished(exc: BaseException | None) -> None:
            if not done.done():
                done.set_result(None) if exc is None else done.set_exception(exc)

        self.submit(message, finished)
        await done

    def submit(self, message: Message | Later, finished: Callable[[BaseException | None], None]) -> None:
        """Queue ``message``; ``finished(None)`` runs on the loop once it is durable, or
        ``finished(exc)`` when its write failed.  The callback form of :meth:`emit`, for
        callers without a coroutine."""
        self._pending.append((message, finished))
        if self._writer is None:
            self._writer = self.loop.create_task(self._write())

    async def _write(self) -> None:
        loop = self.loop
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    await loop.run_in_executor(None, self.publish, [m for m, _ in batch])
                except Exception as exc:  # every request of this write answers 500
                    _tell(batch, exc)
                else:
                    _tell(batch, None)
        finally:
            self._writer = None


def _tell(batch: Sequence[tuple[Any, Callable[[BaseException | None], None]]],
          exc: BaseException | None) -> None:
    for _, finished in batch:
        try:
            finished(exc)
        except Exception:  # one broken callback must not keep the others from their answer
            log.exception("tracking: a publish callback failed")


def committer_of(state: Any) -> tuple[ApiContext, GroupCommit]:
    """The app's context and its group-commit publisher (made on first use, and again
    when the context's publish was swapped, e.g. by a test, or the app is served from
    another event loop, as a test client does).  Kept on the context: one lookup in the
    app's state per request, the rest plain attributes."""
    ctx: ApiContext = state.lunamail
    commit: GroupCommit | None = ctx.tracking_commit
    if (commit is None or commit.publish is not ctx.publish
            or commit.loop is not asyncio.get_running_loop()):
        commit = ctx.tracking_commit = GroupCommit(ctx.publish)
    return ctx, commit


class _Prebuilt(Response):
    """A response whose header list is built once (Starlette otherwise rebuilds it per
    request); ``extra`` headers (e.g. a location) are appended."""

    def __init__(self, status_code: int, body: bytes, raw_headers: Sequence[tuple[bytes, bytes]],
                 extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.status_code = status_code
        self.body = body
        self.background = None
        self.raw_headers = [*raw_headers, *extra]


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


_PIXEL_HEADERS = _raw({"content-length": str(len(PIXEL_GIF)), "content-type": "image/gif", **_NO_CACHE})
_REDIRECT_HEADERS = _raw({"content-length": "0", "Cache-Control": _NO_CACHE["Cache-Control"],
                          "Referrer-Policy": "no-referrer"})
_URL_SAFE = ":/%#?=@[]!$&'()*+,;"  # what Starlette's RedirectResponse leaves unquoted


def _confirm(target: tracking.UnsubscribeTarget) -> HTMLResponse:
    html = tracking.confirm_page(email=target.email, sender=target.sender, has_list=bool(target.list))
    return HTMLResponse(html, headers=_PAGE_HEADERS)


def _not_found() -> HTMLResponse:
    return HTMLResponse(tracking.not_found_page(), status_code=404, headers=_PAGE_HEADERS)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a pixel or click request gets, and the event to make durable before answering
    (None: nothing to count, e.g. a forged pixel token, which still gets its GIF)."""

    status: int
    body: bytes
    raw_headers: list[tuple[bytes, bytes]]
    event: Message | None


_NOT_FOUND_HEADERS = _raw({**_PAGE_HEADERS, "content-type": "text/html; charset=utf-8"})


def answer_open(ctx: ApiContext, token: str, hit: tracking.Hit) -> Answer:
    """Always the GIF (a broken image would only draw attention); counted when the token is good."""
    return Answer(200, PIXEL_GIF, _PIXEL_HEADERS, tracking.record_open(ctx.deps, token, hit))


def answer_click(ctx: ApiContext, token: str, hit: tracking.Hit) -> Answer:
    """302 to the signed URL; a bad token gets the 404 page, never a redirect."""
    clicked = tracking.record_click(ctx.deps, token, hit)
    if clicked is None:
        body = tracking.not_found_page().encode()
        return Answer(404, body, [(b"content-length", str(len(body)).encode()), *_NOT_FOUND_HEADERS],
                      None)
    location = quote(clicked.url, safe=_URL_SAFE).encode("latin-1")
    return Answer(302, b"", [*_REDIRECT_HEADERS, (b"location", location)], clicked)


Answerer = Callable[[ApiContext, str, tracking.Hit], Answer]


def tracking_answerer(path: str) -> tuple[Answerer, str] | None:
    """``(answer function, token)`` when ``path`` (without the root path) is a pixel or a
    click URL, else None: the one routing rule of :class:`TrackingFront` and the tracking
    protocol."""
    if path.startswith("/o/") and path.endswith(".gif") and len(path) > 7:
        token, answer = path[3:-4], answer_open
    elif path.startswith("/c/") and len(path) > 3:
        token, answer = path[3:], answer_click
    else:
        return None
    return None if "/" in token else (answer, token)


async def _answered(state: Any, answer: Answerer, token: str, hit: tracking.Hit) -> Response:
    ctx, commit = committer_of(state)
    found = answer(ctx, token, hit)
    if found.event is not None:
        await commit.emit(found.event)
    return _Prebuilt(found.status, found.body, found.raw_headers)


# The context is read from app.state directly: a ``Depends`` on a sync function costs a
# threadpool hop per request.
@router.api_route("/o/{token}.gif", methods=["GET", "HEAD"])
async def open_pixel(token: str, request: Request) -> Response:
    """Always the GIF (a broken image would only draw attention); counted when the token is good."""
    return await _answered(request.app.state, answer_open, token, _hit(request))


@router.api_route("/c/{token}", methods=["GET", "HEAD"])
async def click(token: str, request: Request) -> Response:
    """302 to the signed URL; HEAD redirects too but is counted as a machine."""
    return await _answered(request.app.state, answer_click, token, _hit(request))


class TrackingFront:
    """ASGI middleware that answers ``GET``/``HEAD`` of ``/o/{token}.gif`` and ``/c/{token}``
    itself, before the framework's routing, and hands every other request on.

    Measured: FastAPI's routing, dependency solving and request objects cost ~0.4 ms of CPU
    per request on the full app (it tries every ``/v1`` route first); this path costs a
    small fraction of that.  Same answers as the routes above (which stay for apps without
    the front).  Two ways to install it:

    * ``app.add_middleware(TrackingFront)``: inside the app (its error middleware still
      turns an unexpected exception into a 500); the context is found via ``scope["app"]``;
    * ``TrackingFront(app, state=app.state)`` as the ASGI app handed to the server: also
      skips FastAPI's own per-request layers (telemetry, body limit, error middleware);
      an unexpected exception then reaches the server, which answers 500 itself."""

    def __init__(self, app: ASGIApp, state: Any = None) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):]
            found = tracking_answerer(path)
            if found is not None:
                answer, token = found
                headers = Headers(scope=scope)
                client = scope.get("client")
                hit = tracking.Hit(method=scope["method"], user_agent=headers.get("user-agent", ""),
                                   ip=client[0] if client else "", headers=headers)
                state = self.state if self.state is not None else scope["app"].state
                response = await _answered(state, answer, token, hit)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


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
    html = tracking.done_page(email=done.email, sender=target.sender, scope=done.scope)
    return HTMLResponse(html, headers=_PAGE_HEADERS)


@router.get("/v/{token}")
def web_view(token: str, ctx: Ctx) -> Response:
    """The campaign as this recipient's online version."""
    html = tracking.web_view(ctx.deps, token)
    if html is None:
        return HTMLResponse(tracking.unavailable_page(), status_code=404, headers=_PAGE_HEADERS)
    return HTMLResponse(html, headers=_VIEW_HEADERS)


def create_tracking_app(deps: Deps, publish: Publish) -> FastAPI:
    """An app with only the public tracking routes (plus ``/health``): what a tracking-only
    deployment serves, and what the tests drive.  Same context and error shape as
    :func:`lunamail.entrypoints.http.app.create_app`."""
    app = FastAPI(title="Lunamail tracking", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.lunamail = ApiContext(deps=deps, publish=publish)
    install_error_handlers(app)
    app.add_middleware(TrackingFront)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(router)
    return app
