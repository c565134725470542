"""Where a tenant's roles stop: other accounts, a locked account's test sends, test copies
past the hourly cap, dead letters behind other tenants' older ones, and CSV exports a
spreadsheet would run."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from lunamail.adapters.queue.sqlite import SqliteQueue
from lunamail.app import accounts as app_accounts
from lunamail.app import campaigns as app_campaigns
from lunamail.app import reports as app_reports
from lunamail.app import runtime_ops
from lunamail.app.base import Actor, Env
from lunamail.app.errors import Forbidden
from lunamail.domain.messages import Message
from lunamail.ports.clock import FakeClock
from lunamail.ports.queue import RetryPolicy
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.services.accounts import api as accounts
from lunamail.services.accounts.errors import TooManyRequests
from lunamail.services.campaigns.errors import PreSendCheckFailed
from tests.support.domains import add_sending_domains


@pytest.fixture()
def system(tmp_path: Path) -> Iterator[System]:
    s = bootstrap_in(tmp_path)
    accounts.create_account(s.deps, "Victim", account_id="victim")
    accounts.create_account(s.deps, "Evil", account_id="evil")
    add_sending_domains(s, ("victim", "evil"), ("example.com",))  # the drafts' From
    yield s
    s.close()


def _env(system: System, published: list[object] | None = None) -> Env:
    sink = published if published is not None else []
    return Env(system.deps, sink.extend, system.queue)


def test_a_tenant_admin_cannot_list_create_or_unlock_other_accounts(system: System) -> None:
    env, evil = _env(system), Actor("evil", "admin")
    accounts.lock_sending(system.deps, "victim", "guard: bounce rate 12%")
    with pytest.raises(Forbidden):
        app_accounts.list_accounts(env, evil)
    with pytest.raises(Forbidden):
        app_accounts.create_account(env, evil, "Squat", account_id="squat")
    with pytest.raises(Forbidden):
        app_accounts.unlock(env, evil, "victim")
    assert accounts.get_account(system.deps, "victim").sending == "locked"
    # its own lock, yes; and the operator may lift any
    accounts.lock_sending(system.deps, "evil", "guard: complaint rate")
    assert app_accounts.unlock(env, evil, "evil").changed
    operator = Actor("*", "owner", installation=True)
    assert app_accounts.unlock(env, operator, "victim").changed
    assert {a.id for a in app_accounts.list_accounts(env, operator).items} >= {"victim", "evil"}


def test_a_locked_account_sends_no_test_copies(system: System) -> None:
    published: list[object] = []
    env, editor = _env(system, published), Actor("evil", "editor")
    draft = app_campaigns.create(env, editor, app_campaigns.NewCampaign(
        name="t", subject="hi", from_email="news@example.com",
        html='<p>hi <a href="{{ unsubscribe_url }}">unsubscribe</a></p>'))
    system.bus.publish(accounts.lock_sending(system.deps, "evil", "guard: complaint rate"))
    assert system.runtime().run_until_idle(timeout=60)  # the campaigns service learns of it
    published.clear()
    with pytest.raises(PreSendCheckFailed) as refused:
        app_campaigns.test(env, editor, draft.id, ["someone@example.net"])
    assert any("locked" in r for r in refused.value.reasons)
    assert not [m for m in published if isinstance(m, Message)]


def test_test_copies_stop_at_the_hourly_cap_of_the_account(tmp_path: Path) -> None:
    clock = FakeClock(1_900_000_000.0)
    system = bootstrap_in(tmp_path / "data", clock=clock)
    accounts.create_account(system.deps, "Victim", account_id="victim")
    accounts.create_account(system.deps, "Evil", account_id="evil")
    add_sending_domains(system, ("victim", "evil"), ("example.com",))
    published: list[object] = []
    env = _env(system, published)
    cap = system.deps.settings.test_copies_per_hour

    def draft(account: str) -> str:
        return app_campaigns.create(env, Actor(account, "editor"), app_campaigns.NewCampaign(
            name="t", subject="hi", from_email="news@example.com",
            html='<p>hi <a href="{{ unsubscribe_url }}">unsubscribe</a></p>')).id

    evil, victim = draft("evil"), draft("victim")
    batch = [f"target{i}@example.net" for i in range(20)]  # the most one call takes
    for _ in range(cap // len(batch)):
        app_campaigns.test(env, Actor("evil", "editor"), evil, batch)
    queued = len(published)
    with pytest.raises(TooManyRequests, match="test_copies_per_hour"):
        app_campaigns.test(env, Actor("evil", "editor"), evil, ["one.more@example.net"])
    assert len(published) == queued  # the refused call queued nothing
    app_campaigns.test(env, Actor("victim", "editor"), victim, batch)  # another account's hour is its own
    assert len(published) == queued + 1
    clock.advance(3600)
    app_campaigns.test(env, Actor("evil", "editor"), evil, ["next.hour@example.net"])
    assert len(published) == queued + 2
    system.close()


def test_a_tenant_sees_its_dead_letters_behind_older_ones_of_others(system: System, tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "dlq.db", retry=RetryPolicy(max_attempts=1))
    try:
        bodies = [orjson.dumps({"name": "Nope", "body": {"account": "victim", "n": i}}) for i in range(150)]
        bodies.append(orjson.dumps({"name": "Nope", "body": {"account": "evil", "n": 0}}))
        for body in bodies:  # one at a time, so the tenant's own is the newest
            queue.send("audience", body)
            for m in queue.receive(["audience"], max_messages=10, visibility_timeout=30):
                queue.fail(m, "boom")
        env = Env(system.deps, [].extend, queue)
        evil = Actor("evil", "admin")
        seen = runtime_ops.dead_letters(env, evil, limit=100).items
        assert [v.account for v in seen] == ["evil"]
        assert runtime_ops.replay(env, evil, replay_all=True).replayed == 1
        assert len(queue.dead_letters(limit=1000)) == 150  # the other tenant's stay buried
    finally:
        queue.close()


@pytest.mark.parametrize("address", ["=cmd|x@example.com", "+1@example.com", "@x@example.com", "-a@example.com"])
def test_csv_exports_are_inert_in_a_spreadsheet_through_every_door(address: str) -> None:
    chunks = "".join(app_reports.csv_chunks([{"email": address}], rows_per_chunk=1))
    out = io.StringIO()
    assert app_reports.write_csv([{"email": address}], out) == 1
    assert chunks == out.getvalue()
    cell = chunks.splitlines()[1]
    assert cell.lstrip('"').startswith("'"), cell


def test_the_ledger_csv_neutralises_a_hostile_server_reply() -> None:
    rows = [{"email": "a@example.com", "status": "failed", "reply": "=HYPERLINK(\"http://x\")"}]
    text = "".join(app_reports.safe_csv(["email", "status", "reply", "missing"], rows))
    header, line = text.splitlines()
    assert header == "email,status,reply,missing"
    assert line.split(",", 2)[2].startswith("\"'=HYPERLINK"), line
    assert line.endswith(",")  # a column the row lacks is an empty cell
