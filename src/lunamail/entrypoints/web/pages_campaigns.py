"""Console pages of campaigns: list, editor with live preview and checklist, test send,
schedule, send/pause/resume/cancel, and the live report (Server-Sent Events).  Every
page calls the application layer's use cases as the signed-in user's actor."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from lunamail.app import audience, campaigns, reports
from lunamail.app.base import Actor, Env, Permission
from lunamail.domain.campaign_model import allowed_actions
from lunamail.entrypoints.http import routes_reports
from lunamail.entrypoints.http.pagination import decode_cursor, encode_cursor
from lunamail.entrypoints.web.common import (
    ConsoleRoute,
    ViewerDep,
    WriterDep,
    ctx_of,
    env_of,
    redirect,
    render,
)

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

STARTER_HTML = """<!doctype html>
<html><body style="font-family: sans-serif; max-width: 600px; margin: auto">
<h1>Hello {{ subscriber.name or "there" }}!</h1>
<p>Write your news here.</p>
<p style="font-size: small"><a href="{{ view_in_browser_url }}">View in browser</a> ·
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>
"""
PREVIEW_PEOPLE = 20
TEST_ANSWER_WAIT = 5.0  # seconds a test send's page waits for the relay's answer
CONTROLS = {"pause": campaigns.pause, "resume": campaigns.resume, "cancel": campaigns.cancel,
            "unschedule": campaigns.unschedule}


@router.get("/campaigns")
def campaign_list(request: Request, viewer: ViewerDep) -> Response:
    env, actor = env_of(request), viewer.actor
    found = campaigns.list_campaigns(env, actor, limit=50).items
    numbers = reports.summaries(env, actor, [c.id for c in found])
    rows = [(c, numbers[c.id]) for c in found]
    return render(request, "campaigns.html", viewer, nav="campaigns", rows=rows, lists=audience.list_lists(env, actor))


@router.post("/campaigns")
def create_campaign(request: Request, viewer: WriterDep, name: Annotated[str, Form(max_length=200)],
                    list_id: Annotated[str, Form(max_length=200)] = "") -> Response:
    c = campaigns.create(env_of(request), viewer.actor,
                         campaigns.NewCampaign(name=name, html=STARTER_HTML, lists=[list_id] if list_id else []))
    return redirect(f"/campaigns/{c.id}", request)


def _people(env: Env, actor: Actor, lists: tuple[str, ...]) -> list[dict[str, Any]]:
    """A few subscribers of the campaign's first list to preview as."""
    if not lists:
        return []
    try:
        return audience.list_subscribers(env, actor, lists[0], limit=PREVIEW_PEOPLE).items
    except Exception:  # a list deleted since: the checklist says so; the preview uses a sample
        return []


def _preview(env: Env, actor: Actor, campaign_id: str, email: str) -> dict[str, Any]:
    """The preview as ``email`` (one of the campaign's subscribers) or a sample person;
    a template that does not compile yet gives its problem instead."""
    who: dict[str, Any] | None = None
    if not actor.can(Permission.CAMPAIGNS):
        return {"subject": "", "html": "", "text": "", "problem": "", "as": None, "hidden": True}
    c = campaigns.get(env, actor, campaign_id)
    for list_id in c.lists if email else ():
        try:
            sub = audience.get_subscriber(env, actor, list_id, email)
        except Exception:
            continue
        who = {"email": sub["email"], "name": sub["name"], "fields": sub["fields"]}
        break
    try:
        out = campaigns.preview(env, actor, campaign_id, who)
    except Exception as exc:
        return {"subject": "", "html": "", "text": "", "problem": str(exc), "as": who}
    return {"subject": out.subject, "html": out.html, "text": out.text, "problem": "", "as": who}


@router.get("/campaigns/{campaign_id}")
def editor(request: Request, viewer: ViewerDep, campaign_id: str) -> Response:
    env, actor = env_of(request), viewer.actor
    c = campaigns.get(env, actor, campaign_id)
    return render(
        request, "campaign.html", viewer, nav="campaigns", c=c, actions=[str(a) for a in allowed_actions(c.status)],
        editable=str(c.status) == "draft" and actor.can(Permission.CAMPAIGNS),
        lists=audience.list_lists(env, actor), people=_people(env, actor, c.lists),
        preview=_preview(env, actor, campaign_id, ""), checklist=campaigns.checklist(env, actor, campaign_id),
    )


@router.post("/campaigns/{campaign_id}/draft")
def save_draft(request: Request, viewer: WriterDep, campaign_id: str,
               name: Annotated[str, Form(max_length=200)], subject: Annotated[str, Form(max_length=998)] = "",
               from_name: Annotated[str, Form(max_length=200)] = "",
               from_email: Annotated[str, Form(max_length=320)] = "",
               lists: Annotated[list[str] | None, Form(max_length=50)] = None,
               html: Annotated[str, Form(max_length=400_000)] = "",
               preview_as: Annotated[str, Form(max_length=320)] = "") -> Response:
    """Autosave from the editor (htmx): store the draft, answer the fresh preview and
    (out of band) the checklist."""
    env, actor = env_of(request), viewer.actor
    changes = campaigns.CampaignChanges(name=name, subject=subject, from_name=from_name, from_email=from_email,
                                        html=html, lists=[x for x in (lists or []) if x])
    c = campaigns.edit(env, actor, campaign_id, changes)
    return render(request, "_preview.html", viewer, c=c, preview=_preview(env, actor, campaign_id, preview_as),
                  checklist=campaigns.checklist(env, actor, campaign_id), oob=True)


@router.post("/campaigns/{campaign_id}/preview")
def preview(request: Request, viewer: WriterDep, campaign_id: str,
            preview_as: Annotated[str, Form(max_length=320)] = "") -> Response:
    env = env_of(request)
    c = campaigns.get(env, viewer.actor, campaign_id)
    return render(request, "_preview.html", viewer, c=c, preview=_preview(env, viewer.actor, campaign_id, preview_as),
                  checklist=None, oob=False)


@router.post("/campaigns/{campaign_id}/test")
def test_send(request: Request, viewer: WriterDep, campaign_id: str,
              addresses: Annotated[str, Form(max_length=2000)]) -> Response:
    to = [a.strip() for a in addresses.replace(";", ",").split(",") if a.strip()]
    env = env_of(request)
    done = campaigns.test(env, viewer.actor, campaign_id, to)
    # say what the relay answered, when it answers within a few seconds
    deadline = time.monotonic() + TEST_ANSWER_WAIT
    result = campaigns.test_result(env, viewer.actor, campaign_id, done.test_id)
    while result.status == "queued" and time.monotonic() < deadline:
        time.sleep(0.1)
        result = campaigns.test_result(env, viewer.actor, campaign_id, done.test_id)
    if result.status == "queued":
        message = "Test queued for " + ", ".join(done.addresses) + "; the relay has not answered yet."
    elif result.status == "sent":
        message = "Test sent to " + ", ".join(done.addresses) + "."
    else:
        message = "Test not sent: " + "; ".join(
            f"{a.address}: {'accepted' if a.outcome == 'sent' else f'{a.code} {a.reply}'}" for a in result.answers)
    return render(request, "_notice.html", viewer, message=message)


@router.post("/campaigns/{campaign_id}/schedule")
def schedule(request: Request, viewer: WriterDep, campaign_id: str, at: Annotated[str, Form(max_length=100)],
             tz: Annotated[str, Form(max_length=64)] = "") -> Response:
    campaigns.schedule(env_of(request), viewer.actor, campaign_id, at, tz=tz or None)
    return redirect(f"/campaigns/{campaign_id}", request)


@router.post("/campaigns/{campaign_id}/send")
def send(request: Request, viewer: WriterDep, campaign_id: str) -> Response:
    campaigns.send(env_of(request), viewer.actor, campaign_id)
    return redirect(f"/campaigns/{campaign_id}/report", request)


@router.post("/campaigns/{campaign_id}/resend")
def resend(request: Request, viewer: WriterDep, campaign_id: str) -> Response:
    """A list of the non-openers and a follow-up draft to it: open the draft to review it."""
    done = reports.resend(env_of(request), viewer.actor, campaign_id, to="non-openers")
    return redirect(f"/campaigns/{done.campaign}", request)


@router.post("/campaigns/{campaign_id}/retry-failed")
def retry_failed(request: Request, viewer: WriterDep, campaign_id: str) -> Response:
    """Send again to the recipients whose failure is worth another try (4xx), once."""
    campaigns.retry_failed(env_of(request), viewer.actor, campaign_id)
    return redirect(f"/campaigns/{campaign_id}/report", request)


@router.post("/campaigns/{campaign_id}/{action}")
def control(request: Request, viewer: WriterDep, campaign_id: str, action: str) -> Response:
    """Pause, resume, cancel or unschedule (each asks for confirmation in the page)."""
    use_case = CONTROLS.get(action)
    if use_case is None:
        return render(request, "error.html", viewer, status=404, code=404, message=f"no action {action!r}")
    use_case(env_of(request), viewer.actor, campaign_id)
    back = "/report" if action != "unschedule" else ""
    return redirect(f"/campaigns/{campaign_id}{back}", request)


# ---------------------------------------------------------------- report


@router.get("/campaigns/{campaign_id}/report")
def report(request: Request, viewer: ViewerDep, campaign_id: str) -> Response:
    env, actor = env_of(request), viewer.actor
    c = campaigns.get(env, actor, campaign_id)
    return render(request, "report.html", viewer, nav="campaigns", c=c, r=reports.campaign_report(env, actor, c.id),
                  actions=[str(a) for a in allowed_actions(c.status)], exports=reports.EXPORTS)


@router.get("/campaigns/{campaign_id}/live")
async def live(request: Request, viewer: ViewerDep, campaign_id: str) -> Response:
    """The stream of ``/v1/campaigns/{id}/report/stream`` for a signed-in person."""
    ctx = ctx_of(request)
    status = str((await run_in_threadpool(campaigns.get, ctx.env, viewer.actor, campaign_id)).status)
    return StreamingResponse(routes_reports.report_events(request, ctx.env, viewer.actor, campaign_id, status),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/campaigns/{campaign_id}/timeseries.json")
def timeseries(request: Request, viewer: ViewerDep, campaign_id: str) -> Response:
    rows = reports.timeseries(env_of(request), viewer.actor, campaign_id, limit=1440)
    return JSONResponse({"items": rows})


# ---------------------------------------------------------------- the per-recipient ledger

LEDGER_PAGE = 50
LEDGER_STATUSES = reports.LEDGER_STATUSES


@router.get("/campaigns/{campaign_id}/recipients")
def ledger(request: Request, viewer: ViewerDep, campaign_id: str, status: str = "",
           cursor: str | None = None) -> Response:
    """Each planned recipient's outcome, filtered by outcome, a page at a time."""
    env, actor = env_of(request), viewer.actor
    c = campaigns.get(env, actor, campaign_id)
    scope = f"console:ledger:{c.id}:{status}"
    inner = decode_cursor(env.deps, actor.account, scope, cursor)
    found = reports.recipients(env, actor, c.id, status=status or None, limit=LEDGER_PAGE, cursor=inner)
    return render(request, "recipients.html", viewer, nav="campaigns", c=c, rows=found.items, outcome=status,
                  statuses=LEDGER_STATUSES, next_cursor=encode_cursor(env.deps, actor.account, scope,
                                                                      found.next_cursor))


@router.get("/campaigns/{campaign_id}/recipients.csv")
def ledger_csv(request: Request, viewer: ViewerDep, campaign_id: str, status: str = "") -> Response:
    lines = reports.recipients_csv(env_of(request), viewer.actor, campaign_id, status=status or None)
    name = f"{campaign_id}-{status or 'all'}-recipients.csv"
    return StreamingResponse(lines, media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/campaigns/{campaign_id}/export.csv")
def export_csv(request: Request, viewer: ViewerDep, campaign_id: str, which: str) -> Response:
    """The recipients of one outcome (opened, clicked, bounced, ...), as CSV."""
    rows = reports.export(env_of(request), viewer.actor, campaign_id, which)
    return StreamingResponse(reports.csv_chunks(rows), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{campaign_id}-{which}.csv"'})
