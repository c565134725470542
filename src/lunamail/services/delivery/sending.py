"""Sending one batch: render, assemble, sign, hand to the mailer, record each outcome once.

Exactly-once over SMTP is bounded, not perfect (DESIGN.md): an outcome is
recorded in a small group as soon as its reply arrives, in the same
transaction as the counters, and a batch that runs again sends only the
recipients that have no final outcome on record.  A crash can therefore
resend at most the messages whose ``250`` arrived but whose group was not yet
committed.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from lunamail.domain.delivery import BatchSent, SendBatch
from lunamail.domain.messages import Later, Message
from lunamail.ports.deps import Deps
from lunamail.ports.handlers import long_running
from lunamail.ports.itemstore import (
    IF_ABSENT,
    ConditionFailed,
    ItemStoreError,
    TransactionCancelled,
    Update,
    attr_equals,
)
from lunamail.ports.mailer import OutgoingMail, SendResult
from lunamail.services.delivery import control, health, keys, ledger
from lunamail.services.delivery.planning import check_progress, load_meta, park
from lunamail.services.delivery.prepare import prepared_campaign
from lunamail.services.delivery.verdicts import refusal_bounces

LEASE_MARGIN = 5.0  # seconds before the lease runs out that a blocked commit gives up
GROUP = 48  # outcomes per commit: small enough to bound a crash's resends, big enough to be cheap
# A "slow down" (421/454: provider throttling, SES sending paused) is about the sender, not
# the recipient: it never counts towards the recipient's retry limit (each record counts its
# own real deferrals in ``attempts``, its slow-downs in ``slowed``).  Slowed recipients are
# retried in a batch of their own after SLOW_DELAY seconds (or defer_base_delay when shorter),
# doubling per slowed round up to SLOW_MAX_DELAY; the pacer has lowered the rate meanwhile.
SLOW_DELAY = 5.0
SLOW_MAX_DELAY = 900.0

log = logging.getLogger(__name__)


class Recorder:
    """Collects results as they arrive (from the mailer's thread) and commits them in groups."""

    def __init__(self, deps: Deps, msg: SendBatch, previous: dict[str, dict[str, Any]], owner: str,
                 recipients: dict[str, dict[str, Any]] | None = None) -> None:
        self._owner = owner
        self._recipients = recipients or {}
        self._deps = deps
        self._msg = msg
        self._prev = previous
        self._lock = threading.Lock()
        self._pending: list[SendResult] = []
        self._max_attempts = max(1, deps.settings.defer_max_attempts)
        self.answered: set[str] = set()  # recipients with a result in this run
        self._stats_pk = keys.campaign_pk(msg.account, msg.campaign)
        self._stats_sk = keys.stats_sk(msg.batch)
        self.throttled = 0
        self.accepted = 0  # replies of this run that were a 250
        self.temporary = 0  # 4xx replies (deferrals, an unreachable relay, a dropped connection)
        self.last_temporary = ""  # the last of them, as the relay (or the connection) said it
        self._lease_until = time.monotonic() + deps.settings.visibility_timeout  # ~ take_lease's
        # the store refused a commit (locked, full): the batch hands out no more mails, keeps
        # the replies of those already on a connection, and commits them in close()
        self.blocked = False
        self._next_try = 0.0

    def on_result(self, result: SendResult) -> None:
        with self._lock:
            self._pending.append(result)
            self.answered.add(str(result.ref))
            if result.throttled:
                self.throttled += 1
            if result.outcome == "sent":
                self.accepted += 1
            elif result.outcome == "deferred":
                self.temporary += 1
                self.last_temporary = f"{result.code} {result.reply}"[:300]
            if len(self._pending) >= GROUP and (not self.blocked or time.monotonic() >= self._next_try):
                try:
                    self._commit_group(self._pending)
                except ItemStoreError:
                    raise
                except Exception as e:  # the store cannot take outcomes now: stop sending
                    if not self.blocked:
                        log.warning("batch %s of campaign %s cannot record outcomes (%s); it stops sending "
                                    "until it can", self._msg.batch, self._msg.campaign, e)
                    self.blocked = True
                    self._next_try = time.monotonic() + 1.0
                    return
                self._pending = []
                self._lease_until = time.monotonic() + self._deps.settings.visibility_timeout

    def close(self) -> None:
        with self._lock:
            group, self._pending = self._pending, []
            if group:
                self._commit(group)

    def _op(self, r: SendResult, now: float) -> tuple[Update, dict[str, int]]:
        email = str(r.ref)
        pk, sk = keys.record_key(self._msg.account, self._msg.campaign, email)
        prev = self._prev.get(email, {})
        was_deferred = bool(prev.get("deferred"))
        attempts = int(prev.get("attempts") or 0) + 1
        outcome = r.outcome
        reply = r.reply[:500]
        slow = r.throttled
        if outcome == "deferred" and not slow and attempts >= self._max_attempts:
            outcome = "failed"
            reply = f"deferred {attempts} times; last reply: {reply}"
        adds = {"sent": 0, "failed": 0, "deferred": 0}
        if outcome == "deferred":
            fields: dict[str, Any] = {"status": "deferred", "deferred": True, "dby": self._msg.batch,
                                      "code": r.code, "reply": reply, "at": now, "slow": slow}
            if not was_deferred:
                adds["deferred"] = 1
            return Update(pk, sk, set=fields, add={"slowed" if slow else "attempts": 1},
                          condition=attr_equals(final=False)), adds
        fields = {"status": outcome, "final": True, "by": self._msg.batch, "code": r.code,
                  "at": now, "deferred": False}
        if outcome == "failed":
            fields["reply"] = reply
        if r.message_id:
            fields["relay_id"] = r.message_id
        adds[outcome] = 1
        if outcome == "failed":  # counted by reason too, for the report's top reasons
            adds[ledger.REASON_PREFIX + ledger.failure_reason(r.code, reply)] = 1
            if ledger.retryable_code(r.code):
                # what ``retry --failed`` needs to send it again (failures are few: cheap)
                adds["retryable"] = 1
                fields["rcpt"] = self._recipients.get(email) or {"email": email}
        if was_deferred:
            adds["deferred"] = -1
        return Update(pk, sk, set=fields, condition=attr_equals(final=False)), adds

    def _commit(self, group: list[SendResult]) -> None:
        """Commit the last outcomes, waiting while the store cannot take them (a file locked
        by another process, a full disk, a throttled table: any error that is not about the
        items themselves).  By then the mailer has stopped (see ``blocked``), so what waits
        here is only what its connections held; it is committed once the store is back
        instead of being lost and sent again.  The wait ends before the batch's lease does:
        past it another run may take the batch over, and then this one gives up as before
        (its unrecorded outcomes are resent: the crash-test bound)."""
        pause, logged = 0.05, False
        while True:
            try:
                self._commit_group(group)
                self._lease_until = time.monotonic() + self._deps.settings.visibility_timeout
                if logged:
                    log.warning("batch %s of campaign %s records outcomes again", self._msg.batch,
                                self._msg.campaign)
                return
            except ItemStoreError:
                raise
            except Exception as e:
                if time.monotonic() + pause >= self._lease_until - LEASE_MARGIN:
                    raise
                if not logged:
                    log.warning("batch %s of campaign %s cannot record outcomes (%s); sending stops "
                                "until it can", self._msg.batch, self._msg.campaign, e)
                    logged = True
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _commit_group(self, group: list[SendResult]) -> None:
        now = self._deps.clock.now()
        ops = [self._op(r, now) for r in group]
        total = {"sent": 0, "failed": 0, "deferred": 0}
        for _, adds in ops:
            for k, v in adds.items():
                total[k] = total.get(k, 0) + v
        try:
            self._deps.store.transact(
                [op for op, _ in ops]
                + [Update(self._stats_pk, self._stats_sk, add=total),
                   Update(self._stats_pk, keys.lease_sk(self._msg.batch),
                          set={"owner": self._owner, "until": now + self._deps.settings.visibility_timeout})]
            )
        except TransactionCancelled:
            # Another run of this batch finalised some of them: one by one, each with its
            # counts (so a store fault half-way leaves nothing counted twice or never).
            for op, adds in ops:
                try:
                    self._deps.store.transact([op, Update(self._stats_pk, self._stats_sk, add=adds)])
                except TransactionCancelled:
                    continue


class BatchBusy(Exception):
    """Another run holds this batch's lease (until ``until``)."""

    def __init__(self, batch: str, until: float) -> None:
        super().__init__(batch)
        self.until = until


def take_lease(deps: Deps, msg: SendBatch, owner: str) -> None:
    """Only one run of a batch sends at a time.  Duplicated SendBatch messages (a page
    handled twice, a resume racing a park) would otherwise both see recipients without
    an outcome and both send.  The lease expires, so a crashed holder's redelivery
    takes it over; the holder refreshes it with every commit."""
    pk, sk = keys.campaign_pk(msg.account, msg.campaign), keys.lease_sk(msg.batch)
    now = deps.clock.now()
    until = now + deps.settings.visibility_timeout
    held = deps.store.get(pk, sk)
    if held is not None and float(held.get("until", 0)) > now and held.get("owner") != owner:
        raise BatchBusy(msg.batch, float(held["until"]))
    cond = IF_ABSENT if held is None else attr_equals(owner=held.get("owner"), until=held.get("until"))
    try:
        deps.store.put({"pk": pk, "sk": sk, "owner": owner, "until": until,
                        "ttl": int(until + 86400)}, condition=cond)
    except ConditionFailed as e:
        raise BatchBusy(msg.batch, until) from e


def release_lease(deps: Deps, msg: SendBatch, owner: str) -> None:
    """Give up the lease after a run that failed, so the queue's retry of the batch starts at
    once, with its own attempt count: behind a lease nobody holds it would be re-delayed as a
    new message every time, and a batch that always fails (a template that breaks a bound)
    would never reach the dead letters."""
    pk, sk = keys.campaign_pk(msg.account, msg.campaign), keys.lease_sk(msg.batch)
    with contextlib.suppress(ConditionFailed):  # taken over meanwhile: the new holder's now
        deps.store.delete(pk, sk, condition=attr_equals(owner=owner))


@long_running
def send_batch(msg: SendBatch, deps: Deps) -> list[Message | Later]:
    """Send the recipients of one batch that have no final outcome yet."""
    if deps.mailer is None:
        raise RuntimeError("no mailer configured")
    meta = load_meta(deps, msg.account, msg.campaign)
    state = control.read(deps, msg.account, msg.campaign, meta)
    if state == "cancelled" or meta.get("delivered"):
        return []
    if state == "paused" and park(deps, msg):
        return []

    prepared = prepared_campaign(deps, msg.account, msg.campaign, meta)
    owner = uuid.uuid4().hex
    try:
        take_lease(deps, msg, owner)
    except BatchBusy as busy:
        # Look again once the lease has run out: if the holder is alive it has finished
        # by then (nothing left to send); if it died, this copy takes over.
        return [Later(msg, max(0.5, busy.until - deps.clock.now() + 0.5))]

    recipients = list(msg.recipients)
    record_keys = [keys.record_key(msg.account, msg.campaign, r["email"]) for r in recipients]
    previous: dict[str, dict[str, Any]] = {}
    todo = []
    for r, rec in zip(recipients, deps.store.get_many(record_keys), strict=True):
        if rec is not None and not rec.get("final"):
            previous[r["email"]] = rec
            todo.append(r)

    recorder = Recorder(deps, msg, previous, owner, {r["email"]: r for r in todo})
    stop = control.StopCheck(deps, msg.account, msg.campaign, "sending")

    def mails() -> Iterator[OutgoingMail]:
        for r in todo:
            if not stop.feeding() or recorder.blocked:
                return
            yield prepared.build(r)

    try:
        if todo:
            deps.mailer.send(mails(), recorder.on_result, lambda: recorder.blocked or stop())
    except Exception:
        # The mailer has settled every mail it was handed: record them, then let go.
        recorder.close()
        release_lease(deps, msg, owner)
        raise
    finally:
        recorder.close()
    if recorder.accepted or recorder.temporary:
        health.observe(deps, msg.account, msg.campaign, accepted=recorder.accepted,
                       temporary=recorder.temporary, reply=recorder.last_temporary)

    out = summarise(deps, msg, recipients, record_keys)
    unsent = tuple(r for r in todo if r["email"] not in recorder.answered)
    if unsent and stop.state != "cancelled":
        # Stopped mid-batch (the slice ended, or a pause): the rest continues under a batch
        # id of its own (each id is counted once by the reports); after a pause it is parked
        # until a resume.
        rest = SendBatch(account=msg.account, campaign=msg.campaign, batch=continued(msg.batch),
                         recipients=unsent, attempt=msg.attempt)
        if stop.state != "paused" or not park(deps, rest):
            out.append(rest)
    return out


_CONTINUED = re.compile(r"^(.*)\.p(\d+)$")


def continued(batch: str) -> str:
    """The id of what is left of ``batch`` after a stop: ``3-0`` -> ``3-0.p1`` -> ``3-0.p2``."""
    m = _CONTINUED.match(batch)
    return f"{m.group(1)}.p{int(m.group(2)) + 1}" if m else f"{batch}.p1"


def summarise(
    deps: Deps, msg: SendBatch, recipients: list[dict[str, Any]], record_keys: list[tuple[str, str]]
) -> list[Message | Later]:
    """Count what this batch id recorded (whichever run recorded it) and chain the retry."""
    sent = failed = retried_n = 0
    sent_emails: list[str] = []
    failures: list[dict[str, Any]] = []
    refused: list[tuple[str, int, str]] = []  # every failure, for the hard-bounce verdicts
    retry: list[dict[str, Any]] = []
    slowed: list[dict[str, Any]] = []
    tries, slow_rounds = 1 << 30, 1 << 30
    for r, rec in zip(recipients, deps.store.get_many(record_keys), strict=True):
        if rec is None:
            continue
        if rec.get("by") == msg.batch:
            retried_n += bool(rec.get("reopened"))
            if rec.get("status") == "sent":
                sent += 1
                sent_emails.append(r["email"])
            elif rec.get("status") == "failed":
                failed += 1
                refused.append((r["email"], int(rec.get("code") or 0), str(rec.get("reply") or "")))
                if len(failures) < 100:
                    failures.append({"email": r["email"], "code": rec.get("code"), "reply": rec.get("reply", "")})
        elif rec.get("dby") == msg.batch and not rec.get("final") and rec.get("slow"):
            slowed.append(r)
            slow_rounds = min(slow_rounds, int(rec.get("slowed") or 1))
        elif rec.get("dby") == msg.batch and not rec.get("final"):
            retry.append(r)
            tries = min(tries, int(rec.get("attempts") or 1))
    now = deps.clock.now()
    out: list[Message | Later] = [
        BatchSent(account=msg.account, campaign=msg.campaign, batch=msg.batch, attempt=msg.attempt,
                  sent=sent, deferred=len(retry) + len(slowed), failed=failed, at=now, failures=tuple(failures),
                  sent_emails=tuple(sent_emails), retried=retried_n),
        *refusal_bounces(msg.account, msg.campaign, refused, now),
    ]
    # Every retry batch has a higher attempt than its parent (the reports count a batch
    # with attempt > 0 as holding earlier deferrals); the delay follows the recipients' own
    # counts, so slowed rounds neither push real deferrals towards their limit nor lengthen
    # their backoff.
    if retry:
        delay = min(deps.settings.defer_base_delay * (2 ** min(tries - 1, 20)), 6 * 3600.0)
        out.append(Later(SendBatch(account=msg.account, campaign=msg.campaign,
                                   batch=retried(msg.batch, msg.attempt + 1),
                                   recipients=tuple(retry), attempt=msg.attempt + 1), delay))
    if slowed:
        base = min(SLOW_DELAY, deps.settings.defer_base_delay)
        delay = min(base * 2 ** min(slow_rounds - 1, 20), SLOW_MAX_DELAY)
        out.append(Later(SendBatch(account=msg.account, campaign=msg.campaign,
                                   batch=retried(msg.batch, msg.attempt + 1) + "s",
                                   recipients=tuple(slowed), attempt=msg.attempt + 1), delay))
    out += check_progress(deps, msg.account, msg.campaign)
    return out


_RETRIED = re.compile(r"\.r\d+$")


def retried(batch: str, attempt: int) -> str:
    """The id of a batch's retry: ``3-0`` -> ``3-0.r1`` -> ``3-0.r2``; its slowed-down part
    gets an ``s``: ``3-0.r1s`` -> ``3-0.r1s.r2`` (unique whatever the history: a batch's
    attempt is the number after its last ``.r``)."""
    return f"{_RETRIED.sub('', batch)}.r{attempt}"
