"""The Router: stable queue names, lookups, and refusal of inconsistent tables."""

from __future__ import annotations

import pytest

from lunamail.domain.messages import Message
from lunamail.ports.deps import Deps
from lunamail.runtime.routing import (
    Router,
    RoutingError,
    default_router,
    load_router,
    queue_name,
)

from . import runtime_fixtures as fx


def test_queue_names_come_from_module_and_function() -> None:
    assert queue_name(fx.work) == f"{fx.__name__}.work"

    def send_batch(msg: fx.Work, deps: Deps) -> None:
        return None

    send_batch.__module__ = "lunamail.services.delivery.handlers"
    send_batch.__qualname__ = "send_batch"
    assert queue_name(send_batch) == "delivery.send_batch"


def test_lambdas_have_no_stable_queue() -> None:
    with pytest.raises(RoutingError):
        queue_name(lambda m, d: None)


def test_lookups() -> None:
    r = fx.ROUTER
    assert r.handlers_for(fx.Started(account="a", key="k")) == (fx.on_started_b, fx.on_started_c)
    assert r.handlers_for(fx.Unrouted(account="a", key="k")) == ()
    assert r.handler_for_queue(queue_name(fx.slow)) is fx.slow
    assert r.queues() == sorted(
        queue_name(h)
        for h in (fx.flaky, fx.doomed, fx.slow, fx.start, fx.on_started_b, fx.on_started_c, fx.work)
    )
    assert r.subscriptions()[queue_name(fx.on_started_b)] == ["runtime_test.Started"]
    with pytest.raises(RoutingError):
        r.handler_for_queue("nobody.home")


def test_one_handler_may_consume_several_messages() -> None:
    r = Router({fx.Start: (fx.work,), fx.Work: (fx.work, fx.work)})
    assert r.queues() == [queue_name(fx.work)]
    assert r.handlers_for(fx.Work(account="a", key="k")) == (fx.work,)
    assert r.subscriptions() == {queue_name(fx.work): ["runtime_test.Start", "runtime_test.Work"]}


def test_unregistered_message_class_is_refused() -> None:
    with pytest.raises(RoutingError):
        Router({Message: (fx.work,)})


def test_two_handlers_with_one_queue_name_are_refused() -> None:
    def work(msg: fx.Work, deps: Deps) -> None:
        return None

    work.__qualname__ = "work"  # same module and name as fx.work, different function
    work.__module__ = fx.__name__
    with pytest.raises(RoutingError, match="two handlers"):
        Router({fx.Work: (fx.work,), fx.Start: (work,)})


def test_load_router_accepts_router_mapping_or_factory() -> None:
    assert load_router(f"{fx.__name__}:ROUTER") is fx.ROUTER
    with pytest.raises(RoutingError):
        load_router("no-colon")
    with pytest.raises(RoutingError):
        load_router(f"{fx.__name__}:MISSING")
    with pytest.raises(RoutingError):
        load_router("no_such_module_xyz:ROUTER")


def test_default_router_is_built_from_the_table() -> None:
    router = default_router()
    # every real handler lives in a service, so its queue is "<service>.<function>"
    for q in router.queues():
        service, _, function = q.partition(".")
        assert service and function and "." not in function, q
        assert router.handler_for_queue(q).__name__ == function
