"""SqsQueue against the Queue contract, on moto in server mode over real HTTP.

SQS keeps its own (real) time, so the contract tests that move a FakeClock are
overridden below with versions that either wait out 1-second timeouts (SQS's
granularity) or check the delay SQS was asked for by recording the
ChangeMessageVisibility calls.  Every override says why.  Tests not overridden
run unchanged.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from lunamail.adapters.queue.sqs import SqsQueue, decode_body, encode_body, sqs_queue_name
from lunamail.ports.clock import FakeClock
from lunamail.ports.queue import Queue, QueueError, RetryPolicy

try:  # works whether or not tests/contract is a package
    from .queue_contract import MakeQueue, QueueContract
except ImportError:
    from queue_contract import MakeQueue, QueueContract  # type: ignore[no-redef]


def _wait_for(q: Queue, queues: list[str], timeout: float = 5.0, **kw: Any) -> list[Any]:
    deadline = time.monotonic() + timeout
    while not (got := q.receive(queues, **kw)):
        assert time.monotonic() < deadline, "message did not come back in time"
        time.sleep(0.1)
    return got


class TestSqsQueue(QueueContract):
    @pytest.fixture(autouse=True)
    def _sqs(self, moto_endpoint: str) -> None:
        self.endpoint = moto_endpoint
        self.prefix = f"t{uuid.uuid4().hex[:10]}-"  # isolates this test's queues on the shared server
        self.visibilities: list[int] = []  # VisibilityTimeout of every ChangeMessageVisibility

    def build(self, tmp_path: Path, *, clock: FakeClock, retry: RetryPolicy) -> Queue:
        client = boto3.client("sqs", endpoint_url=self.endpoint, region_name="us-east-1")

        def record(params: dict[str, Any], **_: Any) -> None:
            self.visibilities.append(int(params["VisibilityTimeout"]))

        client.meta.events.register("provide-client-params.sqs.ChangeMessageVisibility", record)
        return SqsQueue(prefix=self.prefix, client=client, retry=retry)

    # ------------------------------------------------------------ overrides (real time)

    def test_send_receive_round_trip(self, q: Queue, clock: FakeClock) -> None:
        # enqueued_at is the sender's wall clock, not the test's FakeClock.
        before = time.time()
        mid = q.send("a", b"\x00hello\xff")
        [got] = q.receive(["a"])
        assert (got.id, got.queue, got.body, got.attempts) == (mid, "a", b"\x00hello\xff", 1)
        assert before <= got.enqueued_at <= time.time()
        assert got.receipt

    def test_received_message_is_hidden_until_timeout(self, q: Queue, clock: FakeClock) -> None:
        # SQS hides for whole seconds of real time: 1 s instead of 30 s.
        q.send("a", b"x")
        [first] = q.receive(["a"], visibility_timeout=1)
        assert q.receive(["a"]) == []
        [again] = _wait_for(q, ["a"])
        assert again.id == first.id
        assert again.attempts == 2
        assert again.receipt != first.receipt

    def test_stale_receipt_ack_is_ignored(self, q: Queue, clock: FakeClock) -> None:
        # Real time, and an emulator gap: SQS documents that DeleteMessage with an old
        # receipt "succeeds but the message might not be deleted"; moto deletes it.  What
        # the adapter owns is checked: a stale ack never raises, the live claim settles.
        q.send("a", b"x")
        [old] = q.receive(["a"], visibility_timeout=1)
        [new] = _wait_for(q, ["a"], visibility_timeout=30)
        assert new.receipt != old.receipt and new.attempts == 2
        q.ack(old)
        q.ack(new)
        assert q.depth().get("a", 0) == 0

    def test_extend_keeps_message_hidden(self, q: Queue, clock: FakeClock) -> None:
        # 1-2 s of real time instead of a FakeClock: hidden 2 s, extended by 2 s at 1.2 s.
        q.send("a", b"x")
        [m] = q.receive(["a"], visibility_timeout=2)
        time.sleep(1.2)
        q.extend(m, 2)
        time.sleep(1.2)  # 2.4 s after receive: past the first timeout, within the extension
        assert q.receive(["a"]) == []
        assert len(_wait_for(q, ["a"])) == 1

    def test_extend_with_stale_receipt_raises(self, q: Queue, clock: FakeClock) -> None:
        # moto (like SQS at times) accepts a superseded receipt; a receipt of a message
        # that is gone is refused by both, and that must surface as QueueError.
        q.send("a", b"x")
        [m] = q.receive(["a"])
        q.ack(m)
        with pytest.raises(QueueError):
            q.extend(m, 10)

    def test_delayed_message_waits(self, make: MakeQueue, clock: FakeClock) -> None:
        # Hours cannot be waited for: the over-the-cap path is the same with a 1 s cap.
        q = make()
        assert isinstance(q, SqsQueue)
        q.native_delay_limit = 1
        before = time.time()
        mid = q.send("a", b"later", delay=1.5)
        q.send_many([("a", b"also later")], delay=1.5)
        q.send("a", b"now")
        [now] = q.receive(["a"])
        assert now.body == b"now"
        q.ack(now)
        got: list[Any] = []
        while len(got) < 2:
            got += _wait_for(q, ["a"], timeout=6)
        assert time.time() - before >= 1.5
        assert sorted(m.body for m in got) == [b"also later", b"later"]
        assert mid in {m.id for m in got}  # re-delays keep the id
        assert all(m.attempts == 1 for m in got)  # each hop is a fresh SQS message
        assert q.depth() == {"a": 2}

    def test_long_delay_is_not_received_early(self, q: Queue) -> None:
        q.send("a", b"tomorrow", delay=86_400)
        assert q.receive(["a"]) == []
        assert q.depth() == {"a": 1}  # counted as delayed

    def test_fail_backs_off_exponentially(self, q: Queue, clock: FakeClock) -> None:
        # The backoff is what SQS is asked to hide the message for (base 10 s, no jitter).
        q.send("a", b"x")
        [m] = q.receive(["a"], visibility_timeout=1)
        assert q.fail(m, "boom 1") is False
        assert q.fail(replace(m, attempts=2), "boom 2") is False
        assert self.visibilities == [10, 20]
        time.sleep(1.2)  # the 1 s receive timeout has passed; the backoff has not
        assert q.receive(["a"]) == []

    def test_backoff_is_capped(self, make: MakeQueue, clock: FakeClock) -> None:
        # Recorded delays instead of waited ones; SQS rounds up to whole seconds.
        q = make(RetryPolicy(max_attempts=50, base_delay=1, max_delay=8, jitter=0.5))
        q.send("a", b"x")
        [m] = q.receive(["a"])
        for attempt in range(1, 11):
            q.fail(replace(m, attempts=attempt), "e")
        waits = self.visibilities
        assert 1 <= waits[0] <= 2
        assert 1 <= waits[1] <= 3
        assert all(4 <= w <= 8 for w in waits[3:])

    def test_backoff_is_jittered(self, make: MakeQueue, clock: FakeClock) -> None:
        # Recorded delays: 40 retries of 4 s +/- 50 % do not all get the same delay.
        q = make(RetryPolicy(max_attempts=5, base_delay=4, max_delay=60, jitter=0.5))
        q.send_many([("a", b"%d" % i) for i in range(40)])
        for m in q.receive(["a"], max_messages=40):
            q.fail(m, "e")
        assert len(self.visibilities) == 40
        assert all(2 <= w <= 6 for w in self.visibilities)
        assert len(set(self.visibilities)) > 1

    def test_dead_letter_after_max_attempts_keeps_body_and_error(
        self, q: Queue, clock: FakeClock
    ) -> None:
        # The backoff is skipped by making the failed message visible (extend to 0 s).
        mid = q.send("a", b"payload")
        before = time.time()
        for attempt in range(1, 4):
            [m] = q.receive(["a"])
            assert m.attempts == attempt
            dead = q.fail(m, f"ValueError: boom {attempt}\n  traceback line")
            assert dead is (attempt == 3)
            if not dead:
                q.extend(m, 0)
        assert q.receive(["a"]) == []
        assert q.depth().get("a", 0) == 0
        [d] = q.dead_letters()
        assert (d.id, d.queue, d.body, d.attempts) == (mid, "a", b"payload", 3)
        assert d.error == "ValueError: boom 3\n  traceback line"
        assert before <= d.failed_at <= time.time()

    def test_fail_with_stale_receipt_changes_nothing(self, q: Queue, clock: FakeClock) -> None:
        # As for ack: moto accepts superseded receipts, so the stale claim is one whose
        # message is gone; failing it must neither raise nor dead-letter anything.
        q.send("a", b"x")
        [m] = q.receive(["a"])
        q.ack(m)
        assert q.fail(m, "late failure") is False
        final = replace(m, attempts=3)
        assert q.fail(final, "late failure") is False
        assert q.dead_letters() == []

    def test_message_that_keeps_timing_out_is_dead_lettered(
        self, q: Queue, clock: FakeClock
    ) -> None:
        # Real 1 s timeouts; SQS's redrive moves it on the 4th receive.
        q.send("a", b"poison")
        for _ in range(3):
            assert len(_wait_for(q, ["a"], visibility_timeout=1)) == 1
        time.sleep(1.1)
        assert q.receive(["a"]) == []
        [d] = q.dead_letters()
        assert d.body == b"poison"
        assert "visibility timeout" in d.error

    def test_concurrent_receivers_never_share_a_message(self, q: Queue) -> None:
        # Weaker than the contract on purpose: SQS standard queues are at-least-once and may
        # hand the same message to two receivers now and then (moto does so under this
        # load too), so here the check is that nothing is lost and all is acked; handlers
        # are idempotent for exactly this reason.  120 messages instead of 400: moto's
        # ReceiveMessage scans the whole queue on every call (~65 ms at 400 messages).
        q.send_many([("a", b"%d" % i) for i in range(120)])
        seen: list[bytes] = []
        lock = threading.Lock()

        def consume() -> None:
            while batch := q.receive(["a"], max_messages=3, visibility_timeout=300):
                with lock:
                    seen.extend(m.body for m in batch)
                for m in batch:
                    q.ack(m)

        threads = [threading.Thread(target=consume) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(seen) == {b"%d" % i for i in range(120)}
        copies = len(seen) - len(set(seen))
        assert copies <= 3  # an occasional second copy, never a flood
        # A copy handed out twice holds two receipt handles; SQS may keep the message in
        # flight after the ack of the older one, to show it again after its timeout (that
        # is the at-least-once contract). moto's threaded server can also leave one acked
        # message counted in flight when a receive and a delete of it race on a slow box
        # (seen once in CI with every message seen once and acked); it would come back
        # after its timeout, as at-least-once allows.  So at most those may remain.
        assert q.depth().get("a", 0) <= max(copies, 1)

    @staticmethod
    def _bury(q: Queue, clock: FakeClock, items: list[tuple[str, bytes]]) -> None:
        """As the contract's helper, but a failed message is made visible again with
        ``extend(m, 0)`` instead of moving a clock past its backoff."""
        q.send_many(items)
        while got := q.receive(None, max_messages=100):
            for m in got:
                if not q.fail(m, "boom"):
                    q.extend(m, 0)

    # ------------------------------------------------------------ SQS specifics

    def test_queues_and_dead_letter_queues_are_created_with_redrive(self, q: Queue) -> None:
        q.send("audience.import_chunk", b"{}")
        client = boto3.client("sqs", endpoint_url=self.endpoint, region_name="us-east-1")
        name = sqs_queue_name(self.prefix, "audience.import_chunk")
        assert name == f"{self.prefix}audience-import_chunk"
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
        attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs["RedrivePolicy"])
        assert int(redrive["maxReceiveCount"]) == 3
        assert redrive["deadLetterTargetArn"].endswith(f":{name}--dlq")
        assert [m.queue for m in q.receive(None)] == ["audience.import_chunk"]

    def test_send_many_spans_batches_and_queues(self, q: Queue) -> None:
        items = [(f"q{i % 3}", b"%d" % i) for i in range(47)]
        ids = q.send_many(items)
        assert len(set(ids)) == 47
        assert q.depth() == {"q0": 16, "q1": 16, "q2": 15}

    def test_names_that_cannot_round_trip_are_refused(self, q: Queue) -> None:
        for bad in ("has-dash", "a..b", "", "x" * 80):
            with pytest.raises(QueueError):
                q.send(bad, b"x")

    def test_without_create_a_missing_queue_is_an_error(self) -> None:
        q = SqsQueue(prefix=self.prefix, endpoint_url=self.endpoint, create_queues=False)
        with pytest.raises(QueueError, match="regenerate"):
            q.send("nowhere", b"x")
        assert q.receive(["nowhere"]) == []
        q.close()


@pytest.mark.parametrize(
    "body", [b"", b"{}", b"plain text \xc3\xa9", b"\x00\x01", b"\xff\xfe", "\ufffe".encode()]
)
def test_body_encoding_round_trips(body: bytes) -> None:
    text, encoding = encode_body(body)
    assert text  # SQS refuses empty bodies
    assert decode_body(text, encoding) == body


def test_closed_queue_refuses_work(moto_endpoint: str) -> None:
    q = SqsQueue(prefix="closed-", endpoint_url=moto_endpoint)
    q.close()
    with pytest.raises(QueueError, match="closed"):
        q.send("a", b"x")
