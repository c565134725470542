"""The local runtime in this process: retries, dead letters and the dlq CLI, chains,
heartbeats, and the bus's fan-out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from lunamail.domain.messages import Later
from lunamail.entrypoints.cli.main import app as cli
from lunamail.ports.queue import RetryPolicy
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.runtime.routing import queue_name

from . import runtime_fixtures as fx

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.1, jitter=0.2)


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    with bootstrap_in(tmp_path, router=fx.ROUTER, retry=FAST_RETRY) as s:
        yield s


def _cli(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={"LUNAMAIL_DATA_DIR": str(data_dir)})
    return result.exit_code, result.stdout


def test_handler_failing_twice_runs_three_times_and_succeeds(system: System) -> None:
    d = system.settings.data_dir
    system.bus.publish(fx.Flaky(account="acc", key="f", failures=2))
    runtime = system.runtime(concurrency=2)
    done = runtime.run_until(lambda: not system.queue.depth(), timeout=30)
    assert done
    assert len(fx.lines(d, "flaky-f")) == 3
    assert system.queue.dead_letters() == []
    assert (runtime.stats.processed, runtime.stats.failed, runtime.stats.dead_lettered) == (1, 2, 0)


def test_always_failing_handler_is_dead_lettered_listed_and_replayed(system: System) -> None:
    d = system.settings.data_dir
    system.bus.publish(fx.Doomed(account="acc", key="d"))
    runtime = system.runtime(concurrency=2)
    assert runtime.run_until(lambda: bool(system.queue.dead_letters()), timeout=30)
    assert len(fx.lines(d, "doomed-d")) == FAST_RETRY.max_attempts
    assert not system.queue.depth()

    code, out = _cli(d, "dlq", "ls", "--json")
    assert code == 0
    [entry] = orjson.loads(out)["items"]
    assert entry["queue"] == queue_name(fx.doomed)
    assert entry["message"] == "runtime_test.Doomed"
    assert entry["account"] == "acc"
    assert entry["attempts"] == FAST_RETRY.max_attempts
    assert entry["error"] == "ValueError: doomed d cannot be handled"
    assert "runtime_fixtures.py" in entry["detail"]  # the short traceback points at the handler

    code, out = _cli(d, "dlq", "ls")
    assert code == 0
    assert entry["id"] in out

    code, _ = _cli(d, "dlq", "replay")  # neither ids nor --all
    assert code != 0

    (fx.marks(d) / "heal-d").touch()
    code, out = _cli(d, "dlq", "replay", entry["id"], "--json")
    assert code == 0
    assert orjson.loads(out) == {"replayed": 1, "not_found": 0}
    assert system.queue.dead_letters() == []

    assert runtime.run_until(lambda: bool(fx.lines(d, "healed-d")), timeout=30)
    assert runtime.run_until(lambda: not system.queue.depth(), timeout=30)
    assert len(fx.lines(d, "healed-d")) == 1
    assert system.queue.dead_letters() == []


def test_replay_all_and_unknown_ids(system: System) -> None:
    d = system.settings.data_dir
    code, out = _cli(d, "dlq", "replay", "nope", "--json")
    assert code == 1
    assert orjson.loads(out) == {"replayed": 0, "not_found": 1}
    system.bus.publish([fx.Doomed(account="acc", key="x"), fx.Doomed(account="acc", key="y")])
    runtime = system.runtime()
    assert runtime.run_until(lambda: len(system.queue.dead_letters()) == 2, timeout=30)
    code, out = _cli(d, "dlq", "replay", "--all", "--json")
    assert (code, orjson.loads(out)["replayed"]) == (0, 2)
    assert sum(system.queue.depth().values()) == 2


def test_chained_event_reaches_every_consumer(system: System) -> None:
    d = system.settings.data_dir
    system.bus.publish(fx.Start(account="acc", key="k"))
    runtime = system.runtime()
    assert runtime.run_until(lambda: not system.queue.depth(), timeout=30)
    assert len(fx.lines(d, "a-k")) == 1
    assert len(fx.lines(d, "b-k")) == 1
    assert len(fx.lines(d, "c-k")) == 1
    assert runtime.stats.processed == 3


def test_heartbeat_keeps_a_long_handler_from_being_redelivered(tmp_path: Path) -> None:
    overrides = {"visibility_timeout": 0.3}
    with bootstrap_in(tmp_path, router=fx.ROUTER, settings_overrides=overrides) as system:
        system.bus.publish(fx.Slow(account="acc", key="s", seconds=1.2))
        runtime = system.runtime(concurrency=3)
        assert runtime.run_until(lambda: not system.queue.depth(), timeout=30)
    # without the heartbeat a second consumer would have started a copy after 0.3 s
    assert len(fx.lines(tmp_path, "started-s")) == 1
    assert len(fx.lines(tmp_path, "done-s")) == 1


def test_run_until_gives_up_at_timeout(system: System) -> None:
    ticks: list[int] = []
    met = system.runtime().run_until(lambda: False, timeout=0.3, on_tick=lambda: ticks.append(1))
    assert met is False
    assert ticks


def test_bus_fans_out_one_entry_per_consumer(system: System) -> None:
    ids = system.bus.publish(
        [fx.Started(account="acc", key="1"), fx.Unrouted(account="acc", key="2")]
    )
    assert len(ids) == 2
    assert system.queue.depth() == {queue_name(fx.on_started_b): 1, queue_name(fx.on_started_c): 1}
    assert system.bus.dropped == 1
    got = system.queue.receive(None, max_messages=10)
    assert {m.queue for m in got} == {queue_name(fx.on_started_b), queue_name(fx.on_started_c)}
    assert {m.body for m in got} == {fx.Started(account="acc", key="1").to_json()}


def test_bus_delays_later_messages(system: System) -> None:
    system.bus.publish(
        [Later(fx.Work(account="acc", key="w"), 3600), fx.Start(account="a", key="s")]
    )
    assert sum(system.queue.depth().values()) == 2
    got = system.queue.receive(None, max_messages=10)
    assert [m.queue for m in got] == [queue_name(fx.start)]
