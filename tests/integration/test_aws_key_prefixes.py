"""Least privilege, checked against what the handlers really do: every partition key each
service's handlers touch in a whole campaign (import, send with deferrals and failures,
bounces, complaints, opens, clicks, unsubscribes, pause, resume) is allowed by that
service's ``dynamodb:LeadingKeys`` patterns in the template's generated roles.

DynamoDB's ``StringLike`` matches ``*`` across any characters, as ``fnmatchcase`` does.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lunamail.adapters.mailer.memory import MemoryMailer
from lunamail.domain.feedback import Bounced, Complained
from lunamail.domain.tracking import Clicked, Opened, Unsubscribed
from lunamail.ports.itemstore import ItemStore
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.runtime.routing import Router, _routes, queue_name
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from lunamail.services.reports import api as reports
from tests.support.deploy import deploy_module

ACCOUNT = "default"
SERVICE: contextvars.ContextVar[str | None] = contextvars.ContextVar("service", default=None)
HTML = '<p>Hi</p><a href="https://shop.example.org/">shop</a><a href="{{ unsubscribe_url }}">u</a>'


def _generator() -> ModuleType:
    return deploy_module("generate")


class RecordingStore:
    """The real store, noting which service's handler touched which partition key."""

    def __init__(self, inner: ItemStore) -> None:
        self._inner = inner
        self.touched: set[tuple[str, str]] = set()

    def _note(self, *pks: str) -> None:
        service = SERVICE.get()
        if service is not None:
            self.touched.update((service, pk) for pk in pks)

    def get(self, pk: str, sk: str, **kw: Any) -> Any:
        self._note(pk)
        return self._inner.get(pk, sk, **kw)

    def get_many(self, keys: Any) -> Any:
        self._note(*(pk for pk, _ in keys))
        return self._inner.get_many(keys)

    def put(self, item: Any, **kw: Any) -> Any:
        self._note(item["pk"])
        return self._inner.put(item, **kw)

    def put_many(self, items: Any, **kw: Any) -> Any:
        self._note(*(i["pk"] for i in items))
        return self._inner.put_many(items, **kw)

    def update(self, pk: str, sk: str, **kw: Any) -> Any:
        self._note(pk)
        return self._inner.update(pk, sk, **kw)

    def delete(self, pk: str, sk: str, **kw: Any) -> Any:
        self._note(pk)
        return self._inner.delete(pk, sk, **kw)

    def query(self, pk: str, **kw: Any) -> Any:
        self._note(pk)
        return self._inner.query(pk, **kw)

    def batch_write(self, puts: Any = (), deletes: Any = ()) -> Any:
        self._note(*(i["pk"] for i in puts), *(pk for pk, _ in deletes))
        return self._inner.batch_write(puts, deletes)

    def transact(self, ops: Any) -> Any:
        self._note(*(op.item["pk"] if hasattr(op, "item") else op.pk for op in ops))
        return self._inner.transact(ops)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@functools.cache  # one wrapper per handler: a handler of several messages keeps one queue
def _watched(handler: Any) -> Any:
    service = queue_name(handler).split(".", 1)[0]

    @functools.wraps(handler)
    def run(message: Any, deps: Any) -> Any:
        token = SERVICE.set(service)
        try:
            return handler(message, deps)
        finally:
            SERVICE.reset(token)

    return run


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[System, RecordingStore]]:
    from lunamail.adapters.itemstore.sqlite import SqliteItemStore

    store = RecordingStore(SqliteItemStore(tmp_path / "items.db"))
    router = Router({cls: tuple(_watched(h) for h in hs) for cls, hs in _routes().items()})
    mailer = MemoryMailer({"bad@example.net": (550, "5.1.1 no such user"),
                           "later@example.net": [(451, "4.3.0 busy"), (250, "ok")]})
    with bootstrap_in(tmp_path / "data", store=store, router=router, mailer=mailer,  # type: ignore[arg-type]
                      settings_overrides={"batch_size": 10, "page_size": 20, "defer_base_delay": 0.05,
                                          "send_rate": 0}) as s:
        yield s, store


def test_every_key_a_service_touches_is_within_its_leading_keys(
    system: tuple[System, RecordingStore],
) -> None:
    sysm, store = system
    people = [f"p{i:02d}@example.net" for i in range(25)] + ["bad@example.net", "later@example.net"]
    csv = b"email,name\n" + b"".join(f"{e},{e[:3]}\n".encode() for e in people)
    lst = str(audience.create_list(sysm.deps, ACCOUNT, "News")["id"])
    sysm.blobs.put("uploads/default/x.csv", csv, content_type="text/csv")
    _, first = audience.start_import(sysm.deps, ACCOUNT, lst, "uploads/default/x.csv")
    sysm.bus.publish([first])
    assert sysm.runtime().run_until_idle(timeout=60)
    camp = campaigns.create_draft(sysm.deps, ACCOUNT, name="N", subject="Hi", from_name="Us",
                                  from_email="us@sender.example.org", html=HTML, lists=[lst])
    sysm.bus.publish([campaigns.send_now(sysm.deps, ACCOUNT, camp.id)])
    assert sysm.run_until(lambda: reports.campaign_report(sysm.deps, ACCOUNT, camp.id)["status"] == "sent",
                          timeout=60)
    at = sysm.deps.clock.now()
    sysm.bus.publish([
        Bounced(account=ACCOUNT, campaign=camp.id, email=people[0], bounce_type="hard", at=at, id="b1",
                source="dsn", status="5.1.1", diagnostic="user unknown"),
        Bounced(account=ACCOUNT, campaign=camp.id, email=people[1], bounce_type="soft", at=at, id="b2",
                source="dsn", status="4.2.2", diagnostic="full"),
        Complained(account=ACCOUNT, campaign=camp.id, email=people[2], feedback_type="abuse", at=at,
                   id="c1", source="arf"),
        Opened(account=ACCOUNT, campaign=camp.id, email=people[3], machine=False, at=at, id="o1"),
        Clicked(account=ACCOUNT, campaign=camp.id, email=people[3], link=0,
                url="https://shop.example.org/", machine=False, at=at, id="k1"),
        Unsubscribed(account=ACCOUNT, campaign=camp.id, list=lst, email=people[4], scope="all",
                     method="one-click", at=at),
    ])
    assert sysm.runtime().run_until_idle(timeout=60)

    keys = _generator().SERVICE_KEYS
    services = {service for service, _ in store.touched}
    assert {"audience", "campaigns", "delivery", "reports", "tracking", "feedback", "guard"} <= services
    outside = sorted((service, pk) for service, pk in store.touched
                     if not any(fnmatchcase(pk, pattern) for pattern in keys[service]))
    assert outside == []
