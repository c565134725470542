"""Console pages of the audience: dashboard, lists, subscribers, import, suppression.
Every page calls the application layer's use cases as the signed-in user's actor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from lunamail.app import accounts, audience, campaigns, guard, onboarding, reports
from lunamail.entrypoints.http.pagination import decode_cursor, encode_cursor
from lunamail.entrypoints.web.common import (
    ConsoleRoute,
    ViewerDep,
    WriterDep,
    env_of,
    redirect,
    render,
)
from lunamail.ports.blobs import BlobNotFound

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

RECENT = 10
PAGE = 50


@router.get("/")
def dashboard(request: Request, viewer: ViewerDep) -> Response:
    env, actor = env_of(request), viewer.actor
    recent = campaigns.list_campaigns(env, actor, limit=RECENT).items
    numbers = reports.summaries(env, actor, [c.id for c in recent])
    rows = [(c, numbers[c.id]) for c in recent]
    return render(request, "dashboard.html", viewer, nav="dashboard", rows=rows, account=accounts.me(env, actor),
                  reputation=guard.status(env, actor), lists=len(audience.list_lists(env, actor)),
                  first_run=onboarding.first_run(env, actor))


@router.get("/lists")
def lists(request: Request, viewer: ViewerDep) -> Response:
    found = audience.list_lists(env_of(request), viewer.actor)
    return render(request, "lists.html", viewer, nav="lists", lists=found)


@router.post("/lists")
def create_list(request: Request, viewer: WriterDep, name: Annotated[str, Form(max_length=200)],
                fields: Annotated[str, Form(max_length=2000)] = "",
                description: Annotated[str, Form(max_length=2000)] = "") -> Response:
    spec = [{"name": n.strip(), "type": "text"} for n in fields.split(",") if n.strip()]
    made = audience.create_list(env_of(request), viewer.actor, audience.NewList(name, description, spec))
    return redirect(f"/lists/{made['id']}", request)


@router.get("/lists/{list_id}")
def list_page(request: Request, viewer: ViewerDep, list_id: str, q: str = "", cursor: str | None = None) -> Response:
    env, actor = env_of(request), viewer.actor
    lst = audience.get_list(env, actor, list_id)
    scope = f"console:subs:{lst['id']}"
    if q.strip():
        found = audience.list_subscribers(env, actor, list_id, prefix=q.strip().lower(), limit=PAGE)
    else:
        inner = decode_cursor(env.deps, actor.account, scope, cursor)
        found = audience.list_subscribers(env, actor, list_id, limit=PAGE, cursor=inner)
    nxt = encode_cursor(env.deps, actor.account, scope, found.next_cursor)
    template = "_subscribers.html" if request.headers.get("HX-Request") == "true" else "list.html"
    return render(request, template, viewer, nav="lists", lst=lst, subs=found.items, q=q, next_cursor=nxt)


@router.post("/lists/{list_id}/subscribers")
def add_subscriber(request: Request, viewer: WriterDep, list_id: str, email: Annotated[str, Form(max_length=320)],
                   name: Annotated[str, Form(max_length=200)] = "", resubscribe: Annotated[str, Form(max_length=3)] = "",
                   reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    new = audience.NewSubscriber(email, name or None, source="console", resubscribe=resubscribe == "yes", reason=reason)
    audience.subscribe(env_of(request), viewer.actor, list_id, new)
    return redirect(f"/lists/{list_id}", request)


@router.get("/lists/{list_id}/subscribers/{email}")
def subscriber_page(request: Request, viewer: ViewerDep, list_id: str, email: str) -> Response:
    env, actor = env_of(request), viewer.actor
    lst = audience.get_list(env, actor, list_id)
    sub = audience.get_subscriber(env, actor, list_id, email)
    history = audience.subscriber_history(env, actor, sub["email"])
    return render(request, "subscriber.html", viewer, nav="lists", lst=lst, sub=sub,
                  suppressed=history["suppressed"] is not None, history=history)


@router.post("/lists/{list_id}/subscribers/{email}/unsubscribe")
def unsubscribe(request: Request, viewer: WriterDep, list_id: str, email: str) -> Response:
    audience.unsubscribe(env_of(request), viewer.actor, list_id, email, source="console")
    return redirect(f"/lists/{list_id}/subscribers/{email}", request)


@router.post("/lists/{list_id}/subscribers/{email}/delete")
def delete_subscriber(request: Request, viewer: WriterDep, list_id: str, email: str) -> Response:
    audience.remove_subscriber(env_of(request), viewer.actor, list_id, email)
    return redirect(f"/lists/{list_id}", request)


# ---------------------------------------------------------------- import


@router.get("/lists/{list_id}/import")
def import_page(request: Request, viewer: ViewerDep, list_id: str) -> Response:
    lst = audience.get_list(env_of(request), viewer.actor, list_id)
    return render(request, "import.html", viewer, nav="lists", lst=lst)


@router.post("/lists/{list_id}/imports")
async def declare_import(request: Request, viewer: WriterDep, list_id: str) -> Response:
    """The browser's first step: declare the import with its mapping and get the signed
    upload URL it then PUTs the file to (the flow of ``POST /v1/imports``)."""
    body = await request.json()
    mapping = body.get("mapping") if isinstance(body, dict) else None
    mode = body.get("mode", "subscribe") if isinstance(body, dict) else "subscribe"
    return JSONResponse(audience.declare_import(env_of(request), viewer.actor, list_id, mode=str(mode),
                                                mapping={str(k): str(v) for k, v in (mapping or {}).items()}))


@router.post("/imports/{import_id}/start")
def start_import(request: Request, viewer: WriterDep, import_id: str) -> Response:
    return JSONResponse(audience.start_import(env_of(request), viewer.actor, import_id))


@router.get("/imports/{import_id}")
def import_progress(request: Request, viewer: ViewerDep, import_id: str) -> Response:
    job = audience.get_import(env_of(request), viewer.actor, import_id)
    return render(request, "_import_progress.html", viewer, job=job, import_id=import_id)


@router.get("/imports/{import_id}/errors.csv")
def import_errors(request: Request, viewer: ViewerDep, import_id: str) -> Response:
    env = env_of(request)
    key = audience.import_error_report(env, viewer.actor, import_id)
    if not key:
        return render(request, "error.html", viewer, status=404, code=404, message="This import has no error report.")
    try:
        stream = env.deps.blobs.open(key)
    except (BlobNotFound, KeyError, FileNotFoundError):
        return render(request, "error.html", viewer, status=404, code=404, message="The error report is gone.")

    def chunks() -> Iterator[bytes]:
        with stream:  # a report can be large: never read it whole
            yield from iter(lambda: stream.read(64 * 1024), b"")

    return StreamingResponse(chunks(), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"'})


# ---------------------------------------------------------------- suppression


@router.get("/suppression")
def suppression(request: Request, viewer: ViewerDep, cursor: str | None = None) -> Response:
    env, actor = env_of(request), viewer.actor
    inner = decode_cursor(env.deps, actor.account, "console:sup", cursor)
    found = audience.list_suppressions(env, actor, limit=PAGE, cursor=inner)
    nxt = encode_cursor(env.deps, actor.account, "console:sup", found.next_cursor)
    return render(request, "suppression.html", viewer, nav="suppression", items=found.items, next_cursor=nxt)


@router.post("/suppression")
def suppress(request: Request, viewer: WriterDep, email: Annotated[str, Form(max_length=320)],
             reason: Annotated[str, Form(max_length=200)] = "manual") -> Response:
    audience.suppress(env_of(request), viewer.actor, email, reason=reason or "manual", door="console")
    return redirect("/suppression", request)


@router.post("/suppression/{email}/delete")
def unsuppress(request: Request, viewer: WriterDep, email: str) -> Response:
    audience.unsuppress(env_of(request), viewer.actor, email, door="console")
    return redirect("/suppression", request)

