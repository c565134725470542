"""Operator controls that take effect now: a small per-campaign control item.

Pause, cancel and a guard trip must stop new SMTP transactions within a second on
every worker, wherever it runs (a local worker process, a Lambda function).  A
message on a queue is not fast enough: on a busy worker every handler slot may be
running a batch.  So the decision is written to one small item (``CTRL``: a state,
when it was decided and why), and every running batch reads that item at most every
``CONTROL_INTERVAL`` seconds (one key read of a few bytes: cheap next to the sending)
and asks its mailer to stop as soon as it says so.  Only the mails a connection has
already started may then finish; the rest of the batch is parked (pause) or left
(cancel).

Writers are the doors (right after the campaigns service accepted the change, so
the door can return once every sender has seen it), delivery's own handlers of the
campaign events (for every other path, e.g. an account lock) and of the guard's trip.
Each decision carries the time it was made and the item keeps the latest one, so
events handled out of order never undo a newer decision; ``cancelled`` is final.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from lunamail.ports.deps import Deps
from lunamail.ports.itemstore import IF_ABSENT, ConditionFailed, attr_equals
from lunamail.services.delivery import keys

State = Literal["sending", "paused", "cancelled"]

CONTROL_INTERVAL = 0.25
"""Seconds between two reads of the control item by a running batch."""

SETTLE = CONTROL_INTERVAL + 0.25
"""How long after writing a stop every running batch has seen it (one read interval
plus the mailer's 0.1 s look and some slack)."""

SLICE = 0.3
"""Seconds a batch run of a paced send hands out new mails before it ends and chains what
is left as a new batch: its outcomes reach the reports (and the guard) every slice, not
every batch, and a long batch never holds a handler slot for long."""

SLICE_UNPACED = 1.0
"""The same for an unpaced send: its batches mostly end sooner anyway, and every slice
costs a handler run (measured: 0.3 s slices cost a fast send several per cent)."""

SLICE_DRAIN = 0.3
"""After the slice, seconds the mails already handed to the mailer may take before the
ones no connection has started are withdrawn too (a paced or slow relay)."""

_STATES = ("sending", "paused", "cancelled")


def read(deps: Deps, account: str, campaign: str, meta: dict[str, Any] | None = None) -> State:
    """The campaign's current control state.  Campaigns started before the control item
    existed fall back to the status in delivery's copy."""
    item = deps.store.get(keys.campaign_pk(account, campaign), keys.CTRL)
    state = item.get("state") if item is not None else (meta or {}).get("status", "sending")
    return state if state in _STATES else "sending"  # type: ignore[return-value]


def decide(deps: Deps, account: str, campaign: str, state: State, at: float, reason: str = "") -> bool:
    """Record ``state`` decided at ``at`` unless a later decision (or a cancel) is on record.
    True when the item now says ``state``."""
    pk = keys.campaign_pk(account, campaign)
    at = float(at or deps.clock.now())
    for _ in range(8):
        cur = deps.store.get(pk, keys.CTRL)
        if cur is not None:
            if cur.get("state") == "cancelled":
                return state == "cancelled"
            if float(cur.get("at", 0)) > at:
                return cur.get("state") == state
            if cur.get("state") == state and cur.get("reason", "") == reason:
                return True
            cond = attr_equals(state=cur.get("state"), at=cur.get("at"))
        else:
            cond = IF_ABSENT
        try:
            deps.store.put({"pk": pk, "sk": keys.CTRL, "state": state, "at": at, "reason": reason[:500]},
                           condition=cond)
            return True
        except ConditionFailed:
            continue  # another decision landed meanwhile: compare with it
    return False


class StopCheck:
    """The ``stop`` a running batch hands its mailer: reads the control item at most every
    ``CONTROL_INTERVAL`` seconds (a clock comparison otherwise), and ends the batch's slice.

    The slice runs on the deps' clock (a test's fixed clock never ends one)."""

    def __init__(self, deps: Deps, account: str, campaign: str, state: State) -> None:
        self._deps, self._account, self._campaign = deps, account, campaign
        self.state: State = state
        self._next = time.monotonic() + CONTROL_INTERVAL
        start = deps.clock.now()
        paced = deps.settings.send_rate > 0 or bool(deps.settings.send_window)
        self._soft = start + (SLICE if paced else SLICE_UNPACED)
        self._hard = self._soft + SLICE_DRAIN

    def feeding(self) -> bool:
        """Whether to hand the mailer one more mail (asked per mail: two comparisons)."""
        return self.state == "sending" and self._deps.clock.now() < self._soft

    def __call__(self) -> bool:
        if self.state != "sending":
            return True
        if self._deps.clock.now() >= self._hard:
            return True
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + CONTROL_INTERVAL
        self.state = read(self._deps, self._account, self._campaign)
        return self.state != "sending"
