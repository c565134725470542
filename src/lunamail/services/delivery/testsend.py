"""Test sends: the campaign rendered for given addresses, marked as a test, never counted."""

from __future__ import annotations

import logging

from lunamail.domain.campaigns import SendTest
from lunamail.domain.messages import Message
from lunamail.ports.deps import Deps
from lunamail.ports.mailer import SendResult
from lunamail.services.delivery.prepare import PreparedCampaign

log = logging.getLogger(__name__)


class TestSendFailed(RuntimeError):
    """The relay refused a test message (the queue retries, then dead-letters with this)."""


def send_test(msg: SendTest, deps: Deps) -> list[Message]:
    if deps.mailer is None:
        raise RuntimeError("no mailer configured")
    prepared = PreparedCampaign(deps, msg.account, msg.campaign, msg.content, test=True)
    results: list[SendResult] = []
    mails = [prepared.build({"email": a, "name": "", "fields": {}, "list": ""}) for a in msg.addresses]
    deps.mailer.send(mails, results.append)
    bad = [r for r in results if r.outcome != "sent"]
    if bad:
        raise TestSendFailed("; ".join(f"{r.rcpt_to}: {r.code} {r.reply}" for r in bad))
    log.info("test of %s sent to %d address(es)", msg.campaign, len(results))
    return []
