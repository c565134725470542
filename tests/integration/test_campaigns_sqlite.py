"""Campaigns service on a real SQLite file: a whole life cycle, and two processes' worth of
store handles racing on one campaign."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from lunamail.adapters.itemstore.sqlite import SqliteItemStore
from lunamail.config import Settings
from lunamail.domain.campaign_model import CampaignStatus, IllegalTransition
from lunamail.domain.campaigns import CampaignSendStarted
from lunamail.domain.delivery import CampaignDelivered
from lunamail.domain.messages import Later
from lunamail.ports.clock import SystemClock
from lunamail.ports.deps import Deps
from lunamail.services.campaigns import api, handlers

ACCT = "acct-sqlite"
HTML = (
    "<h1>Hello {{ subscriber.fields.first | default('there') }}</h1>"
    '<p><a href="https://luna.example/post">Read</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)


def make_deps(path: Path) -> Deps:
    clock = SystemClock()
    return Deps(settings=Settings(), store=SqliteItemStore(path), blobs=cast(Any, None),
                clock=clock, secrets=cast(Any, None))


@pytest.fixture
def deps(tmp_path: Path) -> Deps:
    return make_deps(tmp_path / "lunamail.db")


def test_life_cycle_on_sqlite(deps: Deps, tmp_path: Path) -> None:
    c = api.create_draft(deps, ACCT, name="Launch", subject="Hi {{ subscriber.name }}",
                         from_email="news@luna.example", html=HTML, lists=["list-a"])
    # Another handle on the same file (as another process would have) sees the draft.
    other = make_deps(tmp_path / "lunamail.db")
    assert api.get(other, ACCT, c.id) == c

    timer = api.schedule(deps, ACCT, c.id, _in_an_hour(deps), audience_size=3)
    early = handlers.handle_send_campaign(timer, other)
    assert len(early) == 1 and isinstance(early[0], Later) and early[0].delay > 3000

    started = api.send_now(other, ACCT, c.id, audience_size=3)
    assert isinstance(started, CampaignSendStarted) and started.lists == ("list-a",)
    assert handlers.handle_send_campaign(timer, deps) == []  # the timer lost the race
    api.pause(deps, ACCT, c.id, reason="guard")
    with pytest.raises(IllegalTransition):
        api.update_draft(deps, ACCT, c.id, name="x")
    api.resume(other, ACCT, c.id)
    done = CampaignDelivered(account=ACCT, campaign=c.id, planned=3, sent=3, failed=0,
                             at=deps.clock.now())
    handlers.on_campaign_delivered(done, deps)
    handlers.on_campaign_delivered(done, other)
    final = api.get(other, ACCT, c.id)
    assert final.status == CampaignStatus.SENT and final.sent_at == done.at
    assert [x.id for x in api.list_campaigns(deps, ACCT, status="sent").items] == [c.id]


def _in_an_hour(deps: Deps) -> str:
    return datetime.fromtimestamp(deps.clock.now() + 3600, tz=UTC).isoformat()


def test_preview_renders_from_sqlite(deps: Deps) -> None:
    c = api.create_draft(deps, ACCT, name="P", subject="S", html=HTML)
    out = api.preview(deps, ACCT, c.id, {"email": "a@b.example", "fields": {"first": "Ana"}})
    assert "<h1>Hello Ana</h1>" in out.html
    assert out.text.startswith("Hello Ana\n\nRead (https://luna.example/post)\n")
