"""Reports on a whole system (real SQLite files, the local queue and runtime): events
published twice through the bus are counted once, and a resend to non-openers builds
a list and a draft through the audience import chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lunamail.app import reports as reports_app
from lunamail.app.base import Actor, Env
from lunamail.app.errors import Conflict
from lunamail.domain.audience import ImportChunk
from lunamail.domain.delivery import BatchSent
from lunamail.domain.feedback import Bounced
from lunamail.domain.messages import Message
from lunamail.domain.tracking import Clicked, Opened, Unsubscribed
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.runtime.routing import Handler, Router
from lunamail.services.audience import api as audience
from lunamail.services.audience import handlers as audience_handlers
from lunamail.services.campaigns import api as campaigns
from lunamail.services.reports import api as reports
from lunamail.services.reports import handlers as rh

A = "acme"

BatchSentE = BatchSent

ROUTES: dict[type[Message], tuple[Handler, ...]] = {
    BatchSentE: (rh.on_batch_sent,),
    Opened: (rh.on_opened,),
    Clicked: (rh.on_clicked,),
    Bounced: (rh.on_bounced,),
    Unsubscribed: (rh.on_unsubscribed,),
    ImportChunk: (audience_handlers.import_chunk,),
}


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    with bootstrap_in(tmp_path / "data", router=Router(ROUTES),
                      settings_overrides={"workers": 4}) as s:
        yield s


def sent_batch(campaign: str, emails: list[str], batch: str, at: float) -> BatchSent:
    return BatchSentE(account=A, campaign=campaign, batch=batch, attempt=0, sent=len(emails),  # type: ignore[call-arg]
                      deferred=0, failed=0, at=at, sent_emails=tuple(emails))


def draft(system: System, name: str = "Spring sale") -> str:
    lst = audience.create_list(system.deps, A, "Everyone")
    camp = campaigns.create_draft(
        system.deps, A, name=name, subject="Big news", from_name="Shop", from_email="shop@example.com",
        html="<p>Hello {{ subscriber.name }}</p><a href='https://example.com/x'>x</a>"
             "<a href='{{ unsubscribe_url }}'>unsubscribe</a>",
        lists=[lst["id"]])
    return camp.id


def test_duplicated_events_through_the_runtime_count_once(system: System) -> None:
    now = system.clock.now()
    emails = [f"r{i:03d}@example.org" for i in range(120)]
    events: list[Message] = [sent_batch("c1", emails[:60], "0-0", now),
                             sent_batch("c1", emails[60:], "0-1", now)]
    events += [Opened(account=A, campaign="c1", email=e, machine=i % 5 == 0, at=now, id=f"o{i}")
               for i, e in enumerate(emails[:80])]
    events += [Clicked(account=A, campaign="c1", email=e, link=i % 2, url=f"https://e.org/{i % 2}",
                       machine=False, at=now, id=f"c{i}") for i, e in enumerate(emails[:30])]
    events += [Bounced(account=A, campaign="", email="ghost@example.org", bounce_type="hard", at=now)]
    system.bus.publish(events)
    system.bus.publish(events)  # at-least-once: every event twice

    def settled() -> bool:
        r = reports.campaign_report(system.deps, A, "c1")
        return bool(r["opened"]["total"] + r["opened"]["machine"] == 80 and r["clicked"]["total"] == 30
                    and r["sent"] == 120)

    assert system.run_until(settled, timeout=60)
    assert system.runtime().run_until_idle(timeout=60)
    r = reports.campaign_report(system.deps, A, "c1")
    assert (r["sent"], r["opened"]["unique"], r["opened"]["total"], r["opened"]["machine"]) == (120, 64, 64, 16)
    assert (r["clicked"]["unique"], r["clicked"]["total"]) == (30, 30)
    assert [(x["link"], x["unique"]) for x in r["links"]] == [(0, 15), (1, 15)]
    assert r["rates"]["open_rate"] == round(64 / 120, 4)
    assert reports.unmapped_report(system.deps, A)["bounced"]["hard"] == 1
    non_openers = [x["email"] for x in reports.export_recipients(system.deps, A, "c1", "non-openers",
                                                                   page_size=9)]
    human_openers = {e for i, e in enumerate(emails[:80]) if i % 5}
    assert non_openers == sorted(set(emails) - human_openers - set(emails[:30]))


def test_resend_to_non_openers_creates_a_list_and_a_draft_with_exactly_them(system: System) -> None:
    original = draft(system)
    now = system.clock.now()
    emails = [f"p{i:03d}@example.org" for i in range(300)]
    system.bus.publish([sent_batch(original, emails[n:n + 100], f"0-{n}", now) for n in range(0, 300, 100)])
    system.bus.publish([Opened(account=A, campaign=original, email=e, machine=False, at=now, id=e)
                        for e in emails[::3]])
    system.bus.publish([Unsubscribed(account=A, campaign=original, list="", email=emails[1], scope="all",
                                     method="one-click", at=now)])
    assert system.runtime().run_until_idle(timeout=60)

    env = Env(system.deps, system.bus.publish)
    out = reports_app.resend(env, Actor(A), original).__dict__
    expected = sorted(set(emails) - set(emails[::3]) - {emails[1]})
    assert out["recipients"] == len(expected) == 199
    members, cursor = [], None
    while True:
        page, cursor = audience.list_subscribers(system.deps, A, out["list"], limit=64, cursor=cursor)
        members += [(m["email"], m["status"]) for m in page]
        if cursor is None:
            break
    assert sorted(members) == [(e, "subscribed") for e in expected]
    assert audience.get_list(system.deps, A, out["list"])["name"] == "Non-openers of Spring sale"
    follow_up = campaigns.get(system.deps, A, out["campaign"])
    before = campaigns.get(system.deps, A, original)
    assert (follow_up.subject, follow_up.lists, follow_up.status) == ("Re: Big news", (out["list"],), "draft")
    assert (follow_up.html, follow_up.from_email) == (before.html, before.from_email)
    again = reports_app.resend(env, Actor(A), original, subject="Last chance").__dict__
    assert audience.get_list(system.deps, A, again["list"])["name"] == "Non-openers of Spring sale (2)"
    assert campaigns.get(system.deps, A, again["campaign"]).subject == "Last chance"


def test_resend_without_non_openers_creates_nothing(system: System) -> None:
    original = draft(system)
    with pytest.raises(Conflict, match="no non-openers"):
        reports_app.resend(Env(system.deps, system.bus.publish), Actor(A), original)
    assert [x["name"] for x in audience.list_lists(system.deps, A)] == ["Everyone"]
