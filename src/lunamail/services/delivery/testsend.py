"""Test sends: the campaign rendered for given addresses, marked as a test, never counted.

What the relay answered for each address is recorded (``TEST#{id}``, kept a day) so the
door that asked can say exactly that: sent, refused with its reply, or the relay
unreachable.  A test is one attempt: its answer is the news, not something to retry.
"""

from __future__ import annotations

import logging
from typing import Any

from lunamail.domain.campaigns import SendTest
from lunamail.domain.messages import Message
from lunamail.ports.deps import Deps
from lunamail.ports.mailer import SendResult
from lunamail.services.delivery import keys
from lunamail.services.delivery.prepare import PreparedCampaign

log = logging.getLogger(__name__)

KEEP = 86400  # seconds a test's outcome stays readable


class TestSendFailed(RuntimeError):
    """The relay refused a test message (the queue retries, then dead-letters with this)."""


def test_sk(test_id: str) -> str:
    return f"TEST#{test_id}"


def send_test(msg: SendTest, deps: Deps) -> list[Message]:
    if deps.mailer is None:
        raise RuntimeError("no mailer configured")
    prepared = PreparedCampaign(deps, msg.account, msg.campaign, msg.content, test=True)
    results: list[SendResult] = []
    mails = [prepared.build({"email": a, "name": "", "fields": {}, "list": ""}) for a in msg.addresses]
    deps.mailer.send(mails, results.append)
    answered = {r.rcpt_to: r for r in results}
    if msg.test_id:
        now = deps.clock.now()
        deps.store.put({
            "pk": keys.campaign_pk(msg.account, msg.campaign), "sk": test_sk(msg.test_id), "at": now,
            "ttl": int(now + KEEP),
            "results": [_result(a, answered.get(a)) for a in msg.addresses],
        })  # fmt: skip
    bad = [r for r in results if r.outcome != "sent"]
    if bad and not msg.test_id:
        raise TestSendFailed("; ".join(f"{r.rcpt_to}: {r.code} {r.reply}" for r in bad))
    log.info("test of %s: %d of %d address(es) accepted by the relay", msg.campaign,
             len(results) - len(bad), len(msg.addresses))
    return []


def _result(address: str, r: SendResult | None) -> dict[str, Any]:
    if r is None:
        return {"address": address, "outcome": "failed", "code": 0, "reply": "no answer from the mailer"}
    # a test is tried once: "deferred" would promise a retry that never comes
    return {"address": address, "outcome": "sent" if r.outcome == "sent" else "failed", "code": r.code,
            "reply": r.reply[:500]}


def test_result(deps: Deps, account: str, campaign: str, test_id: str) -> list[dict[str, Any]] | None:
    """Per address ``{"address", "outcome" (sent | failed), "code", "reply"}``; None until
    the test was sent."""
    item = deps.store.get(keys.campaign_pk(account, campaign), test_sk(test_id))
    return None if item is None else list(item.get("results") or [])
