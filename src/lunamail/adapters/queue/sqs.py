"""SqsQueue: the Queue port on Amazon SQS (standard queues).

Layout.  Every logical queue ``service.handler`` is one SQS queue named
``<prefix>service-handler`` with its own dead-letter queue
``<prefix>service-handler--dlq`` (a redrive policy with ``maxReceiveCount =
retry.max_attempts``).  One DLQ per queue rather than one shared DLQ: a
poison message of one handler is visible (and alarmed on) where it belongs,
SQS's own "redrive to source" works per queue, and one handler's flood of
failures never buries another's.  Logical names are dotted identifiers
(``[A-Za-z0-9_]`` segments), so the mapping ``.`` <-> ``-`` is reversible and
``--`` can only be the DLQ suffix.

Message attributes carry what SQS does not keep for us: the logical id
(``lm_id``: stable across re-delays and replays, unlike SQS's MessageId), the
logical queue, the sender's enqueue time and, for bodies that are not valid
SQS text (SQS bodies are XML characters), ``lm_encoding=base64``.

Semantics and where they differ from the local queue:

* ``fail`` hides the message for the backoff delay (ChangeMessageVisibility;
  whole seconds, rounded up, so jitter is quantised to 1 s).  SQS attributes
  are immutable, so the error of a non-final attempt cannot be stored on the
  message: it is logged by the caller.  On the final attempt the message is
  copied to its DLQ *with* the error (``lm_error``) and deleted, so the
  operator sees why it died.  A message whose consumer crashed or timed out
  is moved by SQS's redrive instead; it arrives without an error and is
  reported as "visibility timeout expired".
* Stale receipts: SQS documents that DeleteMessage with an old receipt handle
  "succeeds but the message might not be deleted", and a stale handle may or
  may not be refused by ChangeMessageVisibility.  The adapter maps every
  "invalid/expired receipt" answer to the port's behaviour (ignored ack,
  ``fail`` -> False, ``extend`` -> QueueError) but cannot detect staleness
  SQS itself accepts.
* ``send_many`` is one SendMessageBatch per queue and 10 messages, not one
  atomic write: a partial failure raises QueueError after the successful
  entries are already queued (handlers are idempotent; the retry re-publishes).
* Delays above SQS's 15-minute cap: the message is sent with the maximum
  delay and the wanted visible-at time in ``lm_due``; whoever receives it
  early (``receive`` here, or the Lambda entrypoint) re-sends it with the
  remaining delay and deletes the early copy.  Each hop is a new SQS message,
  so its receive count (the attempts) starts again at 1.
* ``dead_letters`` and ``replay`` read the DLQs by receiving (SQS has no
  peek); listed messages are made visible again at once.
* ``depth`` uses the approximate counters (visible + in flight + delayed),
  which SQS updates within about a minute.
* Fairness groups are SQS's ``MessageGroupId`` on a standard queue (a *fair
  queue*): SQS itself keeps one group's backlog from delaying the others', by
  the dwell time of each group's messages rather than the local queue's turns.
"""

from __future__ import annotations

import base64
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import ClientError

from lunamail.adapters.queue.sqlite import backoff_delay
from lunamail.ports.queue import DeadLetter, Outgoing, QueueError, Received, RetryPolicy, parts

log = logging.getLogger("lunamail.adapters.queue.sqs")

MAX_NATIVE_DELAY = 900  # SQS DelaySeconds cap
MAX_VISIBILITY = 43_200  # SQS VisibilityTimeout cap (12 h)
MAX_BATCH = 10  # SendMessageBatch / DeleteMessageBatch entries
MAX_BATCH_BYTES = 256 * 1024  # payload of one SendMessageBatch
RETENTION = "1209600"  # 14 days, the SQS maximum, for queues and DLQs alike
DLQ_SUFFIX = "--dlq"
MAX_NAME = 80

A_ID, A_QUEUE, A_ENQUEUED, A_DUE, A_ENCODING = (
    "lm_id", "lm_queue", "lm_enqueued_at", "lm_due", "lm_encoding",
)  # fmt: skip
A_ERROR, A_FAILED_AT, A_ATTEMPTS = "lm_error", "lm_failed_at", "lm_attempts"

_LOGICAL = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_GONE_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_BAD_RECEIPT = {"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight"}
_TIMED_OUT = (
    "visibility timeout expired on each of {n} attempts without an ack or a failure "
    "(moved by the SQS redrive policy: the handler crashed or ran too long)"
)


# ---------------------------------------------------------------- names


def sqs_queue_name(prefix: str, name: str) -> str:
    """SQS name of a logical queue (``audience.import_chunk`` -> ``<prefix>audience-import_chunk``).
    The deploy template is generated with this very function."""
    if not _LOGICAL.match(name):
        raise QueueError(
            f"queue name {name!r}: use dotted identifiers ([A-Za-z0-9_] separated by dots)"
        )
    out = prefix + name.replace(".", "-")
    if len(out) + len(DLQ_SUFFIX) > MAX_NAME:
        raise QueueError(f"queue name {out!r} is too long for SQS with its DLQ suffix")
    return out


def sqs_dlq_name(prefix: str, name: str) -> str:
    return sqs_queue_name(prefix, name) + DLQ_SUFFIX


def logical_name(prefix: str, sqs_name: str) -> str | None:
    """Inverse of :func:`sqs_queue_name` (None for a DLQ or a foreign queue)."""
    if not sqs_name.startswith(prefix) or sqs_name.endswith(DLQ_SUFFIX):
        return None
    name = sqs_name[len(prefix) :].replace("-", ".")
    return name if _LOGICAL.match(name) else None


def name_from_arn(arn: str) -> str:
    """``arn:aws:sqs:region:account:name`` -> ``name``."""
    return arn.rsplit(":", 1)[-1]


# ---------------------------------------------------------------- bodies


def encode_body(body: bytes) -> tuple[str, str | None]:
    """SQS text for a body, and the encoding attribute (None when sent as is)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and not _NOT_SQS_TEXT.search(text):
        return text, None
    # base64 of b"" is empty, which SQS refuses; "=" decodes to b"" below.
    return base64.b64encode(body).decode("ascii") or "=", "base64"


def decode_body(text: str, encoding: str | None) -> bytes:
    if encoding == "base64":
        return b"" if text == "=" else base64.b64decode(text)
    return text.encode("utf-8")


# ---------------------------------------------------------------- incoming messages


@dataclass(frozen=True)
class Incoming:
    """One SQS message as received (by ReceiveMessage or in a Lambda event)."""

    received: Received
    attributes: dict[str, str]  # our lm_* message attributes
    due: float | None  # wanted visible-at time of a long delay


def _attr_values(raw: Mapping[str, Any], value_key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, spec in raw.items():
        if isinstance(spec, Mapping) and isinstance(spec.get(value_key), str):
            out[name] = spec[value_key]
    return out


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _incoming(
    queue: str,
    message_id: str,
    receipt: str,
    body: str,
    system: Mapping[str, Any],
    attributes: dict[str, str],
) -> Incoming:
    sent_ms = _float(system.get("SentTimestamp"))
    enqueued = _float(attributes.get(A_ENQUEUED))
    if enqueued is None:
        enqueued = sent_ms / 1000.0 if sent_ms is not None else time.time()
    received = Received(
        id=attributes.get(A_ID) or message_id,
        queue=queue,
        body=decode_body(body, attributes.get(A_ENCODING)),
        attempts=int(system.get("ApproximateReceiveCount") or 1),
        receipt=receipt,
        enqueued_at=enqueued,
        group=str(system.get("MessageGroupId") or ""),
    )
    return Incoming(received, attributes, _float(attributes.get(A_DUE)))


def incoming_from_api(queue: str, msg: Mapping[str, Any]) -> Incoming:
    """From a ReceiveMessage answer (PascalCase keys)."""
    return _incoming(
        queue,
        str(msg["MessageId"]),
        str(msg["ReceiptHandle"]),
        str(msg.get("Body", "")),
        msg.get("Attributes") or {},
        _attr_values(msg.get("MessageAttributes") or {}, "StringValue"),
    )


def incoming_from_record(queue: str, record: Mapping[str, Any]) -> Incoming:
    """From one record of a Lambda SQS event (camelCase keys)."""
    return _incoming(
        queue,
        str(record["messageId"]),
        str(record["receiptHandle"]),
        str(record.get("body", "")),
        record.get("attributes") or {},
        _attr_values(record.get("messageAttributes") or {}, "stringValue"),
    )


def _attrs(values: Mapping[str, str | float | int]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in values.items():
        if isinstance(value, str):
            out[name] = {"DataType": "String", "StringValue": value or "-"}
        else:
            out[name] = {"DataType": "Number", "StringValue": repr(value)}
    return out


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


# ---------------------------------------------------------------- the adapter


class SqsQueue:
    """The Queue port on SQS; thread-safe (boto3 clients are), one instance per process.

    ``create_queues`` makes a missing queue (and its DLQ) on first send, which the
    local tools and tests want; a deployment whose template made the queues passes
    False so a typo fails loudly instead of creating a queue nobody reads.
    ``native_delay_limit`` is SQS's 900 s delay cap (lower it only to test re-delays).
    """

    def __init__(
        self,
        *,
        prefix: str = "lunamail-",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client: Any = None,
        retry: RetryPolicy = RetryPolicy(),
        create_queues: bool = True,
        native_delay_limit: int = MAX_NATIVE_DELAY,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= native_delay_limit <= MAX_NATIVE_DELAY:
            raise ValueError(f"native_delay_limit must be within 1..{MAX_NATIVE_DELAY}")
        self.prefix = prefix
        self.retry = retry
        self.create_queues = create_queues
        self.native_delay_limit = native_delay_limit
        self._own_client = client is None
        self._client = client or boto3.client(
            "sqs",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32),
        )
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._urls: dict[str, str] = {}
        self._closed = False

    # ------------------------------------------------------------ queue URLs

    def _url(self, sqs_name: str, *, create: bool) -> str | None:
        with self._lock:
            url = self._urls.get(sqs_name)
        if url is not None:
            return url
        try:
            url = str(self._client.get_queue_url(QueueName=sqs_name)["QueueUrl"])
        except ClientError as exc:
            if _code(exc) not in _GONE_QUEUE:
                raise QueueError(f"SQS queue {sqs_name}: {exc}") from exc
            if not create:
                return None
            url = self._create(sqs_name)
        with self._lock:
            self._urls[sqs_name] = url
        return url

    def _queue_url(self, name: str, *, create: bool = False) -> str:
        url = self._url(sqs_queue_name(self.prefix, name), create=create)
        if url is None:
            hint = "" if self.create_queues else " (regenerate and deploy the template)"
            raise QueueError(f"no SQS queue for {name!r}{hint}")
        return url

    def _create(self, sqs_name: str) -> str:
        """The DLQ first, then the queue with a redrive policy pointing at it.  CreateQueue
        is idempotent for equal attributes, so racing processes agree."""
        try:
            dlq = self._client.create_queue(
                QueueName=sqs_name + DLQ_SUFFIX, Attributes={"MessageRetentionPeriod": RETENTION}
            )["QueueUrl"]
            arn = self._client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            redrive = {"deadLetterTargetArn": arn, "maxReceiveCount": str(self.retry.max_attempts)}
            return str(
                self._client.create_queue(
                    QueueName=sqs_name,
                    Attributes={
                        "MessageRetentionPeriod": RETENTION,
                        "RedrivePolicy": orjson.dumps(redrive).decode(),
                    },
                )["QueueUrl"]
            )
        except ClientError as exc:
            raise QueueError(f"cannot create SQS queue {sqs_name}: {exc}") from exc

    def _sqs_names(self, *, dlq: bool) -> list[str]:
        """SQS names under our prefix: the queues, or their DLQs."""
        names: list[str] = []
        kwargs: dict[str, Any] = {"QueueNamePrefix": self.prefix, "MaxResults": 1000}
        while True:
            try:
                page = self._client.list_queues(**kwargs)
            except ClientError as exc:
                raise QueueError(f"cannot list SQS queues: {exc}") from exc
            for url in page.get("QueueUrls", []):
                name = url.rstrip("/").rsplit("/", 1)[-1]
                with self._lock:
                    self._urls.setdefault(name, url)
                names.append(name)
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
        if dlq:
            return sorted(n for n in names if n.endswith(DLQ_SUFFIX))
        return sorted(n for n in names if logical_name(self.prefix, n) is not None)

    def ensure(self, names: Iterable[str]) -> None:
        """Create these queues (and DLQs) when missing: local set-up and tests; a deployment
        gets them from the template."""
        for name in names:
            self._url(sqs_queue_name(self.prefix, name), create=True)

    def queue_names(self) -> list[str]:
        """Logical names of every queue under the prefix."""
        return [str(logical_name(self.prefix, n)) for n in self._sqs_names(dlq=False)]

    # ------------------------------------------------------------ sending

    def send(self, queue: str, body: bytes, *, delay: float = 0.0, group: str = "") -> str:
        return self.send_many([(queue, body, group)], delay=delay)[0]

    def send_many(self, items: Sequence[Outgoing], *, delay: float = 0.0) -> list[str]:
        self._check_open()
        if not items:
            return []
        if delay < 0:
            raise ValueError("delay must be >= 0")
        now = time.time()
        due = now + delay if delay > self.native_delay_limit else None
        ids = [uuid.uuid4().hex for _ in items]
        by_queue: dict[str, list[dict[str, Any]]] = {}
        for mid, (queue, body, group) in zip(ids, map(parts, items), strict=True):
            by_queue.setdefault(queue, []).append(
                self._entry(mid, queue, body, enqueued_at=now, due=due, delay=delay, group=group)
            )
        for queue, entries in by_queue.items():
            self._send_entries(self._queue_url(queue, create=self.create_queues), entries)
        return ids

    def _entry(
        self, mid: str, queue: str, body: bytes, *, enqueued_at: float, due: float | None,
        delay: float, extra: Mapping[str, str | float | int] | None = None, group: str = "",
    ) -> dict[str, Any]:  # fmt: skip
        text, encoding = encode_body(body)
        values: dict[str, str | float | int] = {A_ID: mid, A_QUEUE: queue, A_ENQUEUED: enqueued_at}
        if encoding:
            values[A_ENCODING] = encoding
        if due is not None:
            values[A_DUE] = due
        values.update(extra or {})
        seconds = min(self.native_delay_limit, math.ceil(max(0.0, delay)))
        entry: dict[str, Any] = {"MessageBody": text, "DelaySeconds": seconds, "MessageAttributes": _attrs(values)}
        if group:
            entry["MessageGroupId"] = group[:128]  # SQS's limit on a group id
        return entry

    def _send_entries(self, url: str, entries: list[dict[str, Any]]) -> None:
        """SendMessageBatch in groups of 10 (and 256 KiB); failed entries are retried
        once when SQS says it was its fault."""
        for group in self._batches(entries):
            pending = {str(i): e for i, e in enumerate(group)}
            for attempt in range(2):
                try:
                    resp = self._client.send_message_batch(
                        QueueUrl=url, Entries=[{"Id": k, **e} for k, e in pending.items()]
                    )
                except ClientError as exc:
                    raise QueueError(f"SQS send to {url}: {exc}") from exc
                failed = resp.get("Failed") or []
                if not failed:
                    break
                if attempt == 1 or any(f.get("SenderFault") for f in failed):
                    first = failed[0]
                    raise QueueError(
                        f"SQS refused {len(failed)} message(s) for {url}: "
                        f"{first.get('Code')}: {first.get('Message')}"
                    )
                pending = {f["Id"]: pending[f["Id"]] for f in failed}

    @staticmethod
    def _batches(entries: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        group: list[dict[str, Any]] = []
        size = 0
        for e in entries:
            n = len(e["MessageBody"].encode("utf-8")) + sum(
                len(k) + len(v["StringValue"]) + 8 for k, v in e["MessageAttributes"].items()
            )
            if group and (len(group) == MAX_BATCH or size + n > MAX_BATCH_BYTES):
                yield group
                group, size = [], 0
            group.append(e)
            size += n
        if group:
            yield group

    # ------------------------------------------------------------ receiving

    def receive(
        self,
        queues: Sequence[str] | None = None,
        *,
        max_messages: int = 10,
        visibility_timeout: float = 30.0,
    ) -> list[Received]:
        self._check_open()
        if max_messages <= 0 or (queues is not None and not queues):
            return []
        names = list(queues) if queues is not None else self.queue_names()
        hide = min(MAX_VISIBILITY, math.ceil(max(0.0, visibility_timeout)))
        out: list[Received] = []
        for name in names:
            url = self._url(sqs_queue_name(self.prefix, name), create=False)
            while url is not None and len(out) < max_messages:
                want = min(MAX_BATCH, max_messages - len(out))
                try:
                    resp = self._client.receive_message(
                        QueueUrl=url,
                        MaxNumberOfMessages=want,
                        VisibilityTimeout=hide,
                        WaitTimeSeconds=0,
                        MessageAttributeNames=["All"],
                        MessageSystemAttributeNames=[
                            "ApproximateReceiveCount", "SentTimestamp", "MessageGroupId",
                        ],
                    )
                except ClientError as exc:
                    raise QueueError(f"SQS receive from {name!r}: {exc}") from exc
                messages = resp.get("Messages") or []
                for raw in messages:
                    incoming = incoming_from_api(name, raw)
                    if not self.redelay_if_early(incoming):
                        out.append(incoming.received)
                if len(messages) < want:
                    break
            if len(out) >= max_messages:
                break
        return out

    def redelay_if_early(self, incoming: Incoming) -> bool:
        """A long-delayed message received before its ``lm_due`` time goes back with the
        remaining delay (at most SQS's cap) and the early copy is deleted.  Returns True
        when the message was re-delayed (the caller must not process it)."""
        if incoming.due is None:
            return False
        remaining = incoming.due - time.time()
        if remaining <= 0:
            return False
        rec = incoming.received
        url = self._queue_url(rec.queue)
        due = incoming.due if remaining > self.native_delay_limit else None
        entry = self._entry(
            rec.id, rec.queue, rec.body, enqueued_at=rec.enqueued_at, due=due, delay=remaining,
            group=rec.group,
        )
        self._send_entries(url, [entry])
        self._delete(url, rec.receipt)
        return True

    def received_from_record(self, record: Mapping[str, Any], queue: str) -> Received | None:
        """A Lambda event record as a :class:`Received` of ``queue``, or None when it was an
        early copy of a long-delayed message (re-delayed here; report it as a success)."""
        incoming = incoming_from_record(queue, record)
        return None if self.redelay_if_early(incoming) else incoming.received

    # ------------------------------------------------------------ settling

    def _delete(self, url: str, receipt: str) -> None:
        try:
            self._client.delete_message(QueueUrl=url, ReceiptHandle=receipt)
        except ClientError as exc:
            if _code(exc) not in _BAD_RECEIPT | _GONE_QUEUE:
                raise QueueError(f"SQS delete: {exc}") from exc

    def _hide(self, msg: Received, seconds: float) -> bool:
        """ChangeMessageVisibility; False when SQS says the receipt is no longer valid."""
        try:
            self._client.change_message_visibility(
                QueueUrl=self._queue_url(msg.queue),
                ReceiptHandle=msg.receipt,
                VisibilityTimeout=min(MAX_VISIBILITY, math.ceil(max(0.0, seconds))),
            )
        except ClientError as exc:
            if _code(exc) in _BAD_RECEIPT | _GONE_QUEUE:
                return False
            raise QueueError(f"SQS change visibility: {exc}") from exc
        return True

    def ack(self, msg: Received) -> None:
        self._check_open()
        self._delete(self._queue_url(msg.queue), msg.receipt)

    def fail(self, msg: Received, error: str) -> bool:
        self._check_open()
        if msg.attempts < self.retry.max_attempts:
            with self._lock:
                delay = backoff_delay(self.retry, msg.attempts, self._rng)
            self._hide(msg, delay)
            return False
        # Last attempt: hide it while the copy goes out (and learn whether the receipt
        # is still ours), copy it to the DLQ with its error, then delete the original.
        if not self._hide(msg, 60):
            return False
        dlq = self._url(sqs_dlq_name(self.prefix, msg.queue), create=False)
        if dlq is None:
            raise QueueError(f"no dead-letter queue for {msg.queue!r}")
        extra: dict[str, str | float | int] = {
            A_ERROR: error, A_FAILED_AT: time.time(), A_ATTEMPTS: msg.attempts,
        }  # fmt: skip
        entry = self._entry(
            msg.id, msg.queue, msg.body, enqueued_at=msg.enqueued_at, due=None, delay=0,
            extra=extra, group=msg.group,
        )  # fmt: skip
        self._send_entries(dlq, [entry])
        self._delete(self._queue_url(msg.queue), msg.receipt)
        return True

    def extend(self, msg: Received, visibility_timeout: float) -> None:
        self._check_open()
        if not self._hide(msg, visibility_timeout):
            raise QueueError(f"message {msg.id}: receipt is no longer valid")

    # ------------------------------------------------------------ dead letters

    def _scan_dlqs(self, limit: int | None) -> Iterator[tuple[str, Incoming]]:
        """Receive DLQ messages (hidden for 60 s so the scan moves on); the caller releases
        what it keeps.  Yields (dlq url, message)."""
        seen = 0
        for dlq_name in self._sqs_names(dlq=True):
            url = self._url(dlq_name, create=False)
            source = logical_name(self.prefix, dlq_name[: -len(DLQ_SUFFIX)]) or dlq_name
            while url is not None and (limit is None or seen < limit):
                want = MAX_BATCH if limit is None else min(MAX_BATCH, limit - seen)
                try:
                    resp = self._client.receive_message(
                        QueueUrl=url,
                        MaxNumberOfMessages=want,
                        VisibilityTimeout=60,
                        WaitTimeSeconds=0,
                        MessageAttributeNames=["All"],
                        MessageSystemAttributeNames=[
                            "ApproximateReceiveCount", "SentTimestamp", "MessageGroupId",
                        ],
                    )
                except ClientError as exc:
                    raise QueueError(f"SQS receive from {dlq_name}: {exc}") from exc
                messages = resp.get("Messages") or []
                for raw in messages:
                    seen += 1
                    yield url, incoming_from_api(source, raw)
                if len(messages) < want:
                    break

    def _release(self, held: Sequence[tuple[str, str]]) -> None:
        """Make scanned DLQ messages visible again at once."""
        by_url: dict[str, list[str]] = {}
        for url, receipt in held:
            by_url.setdefault(url, []).append(receipt)
        for url, receipts in by_url.items():
            for group in _chunks(receipts, MAX_BATCH):
                entries = [
                    {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                    for i, r in enumerate(group)
                ]
                try:
                    self._client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
                except ClientError:
                    log.warning("could not release %d dead letter(s) on %s", len(group), url)

    def _dead_letter(self, incoming: Incoming) -> DeadLetter:
        rec, attrs = incoming.received, incoming.attributes
        queue = attrs.get(A_QUEUE) or rec.queue
        if A_ERROR in attrs:
            attempts = int(_float(attrs.get(A_ATTEMPTS)) or self.retry.max_attempts)
            failed_at = _float(attrs.get(A_FAILED_AT)) or rec.enqueued_at
            return DeadLetter(rec.id, queue, rec.body, attempts, attrs[A_ERROR], failed_at)
        # Moved by the redrive policy: SQS keeps no error and no move time.
        n = self.retry.max_attempts
        return DeadLetter(rec.id, queue, rec.body, n, _TIMED_OUT.format(n=n), rec.enqueued_at)

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        self._check_open()
        if limit <= 0:
            return []
        held: list[tuple[str, str]] = []
        out: list[DeadLetter] = []
        try:
            for url, incoming in self._scan_dlqs(limit):
                held.append((url, incoming.received.receipt))
                out.append(self._dead_letter(incoming))
        finally:
            self._release(held)
        return sorted(out, key=lambda d: (d.failed_at, d.id))

    def replay(self, ids: Sequence[str] | None = None) -> int:
        self._check_open()
        wanted = None if ids is None else set(ids)
        if wanted is not None and not wanted:
            return 0
        held: list[tuple[str, str]] = []
        moved: set[str] = set()
        try:
            for url, incoming in self._scan_dlqs(None):
                dead = self._dead_letter(incoming)
                if wanted is not None and dead.id not in wanted:
                    held.append((url, incoming.received.receipt))
                    continue
                entry = self._entry(
                    dead.id, dead.queue, dead.body, enqueued_at=incoming.received.enqueued_at,
                    due=None, delay=0, group=incoming.received.group,
                )  # fmt: skip
                self._send_entries(self._queue_url(dead.queue, create=self.create_queues), [entry])
                self._delete(url, incoming.received.receipt)
                moved.add(dead.id)
        finally:
            self._release(held)
        return len(moved)

    # ------------------------------------------------------------ introspection

    def depth(self) -> dict[str, int]:
        self._check_open()
        out: dict[str, int] = {}
        counters = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        for sqs_name in self._sqs_names(dlq=False):
            url = self._url(sqs_name, create=False)
            if url is None:
                continue
            try:
                attrs = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=counters)
            except ClientError as exc:
                if _code(exc) in _GONE_QUEUE:
                    continue
                raise QueueError(f"SQS attributes of {sqs_name}: {exc}") from exc
            n = sum(int(attrs.get("Attributes", {}).get(c, 0)) for c in counters)
            if n:
                out[str(logical_name(self.prefix, sqs_name))] = n
        return out

    def _check_open(self) -> None:
        if self._closed:
            raise QueueError("queue is closed")

    def close(self) -> None:
        self._closed = True
        if self._own_client:
            close = getattr(self._client, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> SqsQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqsQueue(prefix={self.prefix!r})"
