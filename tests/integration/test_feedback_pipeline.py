"""Feedback end to end on a real data folder (SQLite store and queue, file blobs): raw
bounce mail goes in, the workers run, and the lists show it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunamail.domain.feedback import Bounced, Complained, IngestRaw, SoftBounceLimitReached
from lunamail.domain.messages import Message
from lunamail.domain.tracking import Unsubscribed
from lunamail.lib import tokens
from lunamail.lib.verp import encode_return_path
from lunamail.ports.queue import RetryPolicy
from lunamail.ports.secrets import DerivedSecrets
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.runtime.routing import Handler, Router
from lunamail.services.audience import api, reactions
from lunamail.services.feedback import dsn, handlers, ingest, policy

CORPUS = Path(__file__).resolve().parents[1] / "data" / "dsn"
CORPUS_KEY = b"lunamail-corpus-key"
A = "acme"
FAST_RETRY = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05, jitter=0.1)

# The feedback rows the lead adds to the routing table.
ROUTES: dict[type[Message], tuple[Handler, ...]] = {
    IngestRaw: (handlers.ingest_raw,),
    Bounced: (policy.count_soft_bounce, reactions.on_bounced),
    SoftBounceLimitReached: (reactions.on_soft_bounce_limit,),
    Complained: (reactions.on_complained,),
    Unsubscribed: (reactions.on_unsubscribed,),
}


class CorpusSecrets:
    def __init__(self) -> None:
        self._derived = DerivedSecrets(b"s" * 32)

    def key(self, account: str, purpose: str) -> bytes:
        return CORPUS_KEY if purpose == tokens.VERP else self._derived.key(account, purpose)


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    with bootstrap_in(
        tmp_path, router=Router(ROUTES), secrets=CorpusSecrets(), retry=FAST_RETRY
    ) as s:
        yield s


def run(system: System) -> None:
    assert system.runtime(concurrency=2).run_until_idle(timeout=60)


def feed(system: System, raw: bytes, envelope_to: str | None = None) -> IngestRaw:
    cmd = ingest.store_raw(system.deps, A, raw, envelope_to)
    system.bus.publish([cmd])
    return cmd


def setup_lists(system: System, *emails: str) -> tuple[str, str]:
    news = api.create_list(system.deps, A, "News")["id"]
    offers = api.create_list(system.deps, A, "Offers")["id"]
    for lid in (news, offers):
        for email in (*emails, "keep@example.com"):
            api.subscribe(system.deps, A, lid, email)
    return news, offers


def status(system: System, lid: str, email: str) -> str:
    return str(api.get_subscriber(system.deps, A, lid, email)["status"])


def counts(system: System, lid: str) -> dict[str, int]:
    return {k: v for k, v in api.count_by_status(system.deps, A, lid).items() if v}


def test_hard_bounce_and_complaint_reach_every_list(system: System) -> None:
    news, offers = setup_lists(
        system, "jdoe@example.net", "casey@example.com", "taylor@example.com"
    )
    for case in ("postfix_hard_511", "arf_yahoo_abuse", "autoreply_ooo_auto_submitted"):
        feed(system, (CORPUS / f"{case}.eml").read_bytes())
    run(system)
    for lid in (news, offers):
        assert status(system, lid, "jdoe@example.net") == "bounced"
        assert status(system, lid, "casey@example.com") == "complained"
        assert (
            status(system, lid, "taylor@example.com") == "subscribed"
        )  # an auto-reply is no bounce
        assert counts(system, lid) == {"subscribed": 2, "bounced": 1, "complained": 1}
    sups = {s["email"]: s["reason"] for s in api.list_suppressions(system.deps, A)[0]}
    assert set(sups) == {"jdoe@example.net", "casey@example.com"}
    assert sups["jdoe@example.net"].startswith("hard bounce: 5.1.1")
    assert system.queue.dead_letters() == []

    # the same bytes again: nothing new happens
    feed(system, (CORPUS / "postfix_hard_511.eml").read_bytes())
    run(system)
    assert counts(system, news) == {"subscribed": 2, "bounced": 1, "complained": 1}


def test_three_soft_bounces_over_a_week_suppress(system: System) -> None:
    news, offers = setup_lists(system, "pat.kim@example.org")
    base = (CORPUS / "postfix_soft_422_quota.eml").read_bytes()
    t0 = system.deps.clock.now()
    for i in range(3):
        # three distinct bounce messages (each MTA report has its own bytes), days apart
        cmd = ingest.store_raw(system.deps, A, base + f"\n-- retry {i}\n".encode())
        system.bus.publish([IngestRaw(account=A, blob_key=cmd.blob_key, sha256=cmd.sha256,
                                      received_at=t0 + i * 3.5 * 86400, ingest_id=cmd.ingest_id)])
        run(system)
        expected = "bounced" if i == 2 else "subscribed"
        assert status(system, news, "pat.kim@example.org") == expected, i
    assert status(system, offers, "pat.kim@example.org") == "bounced"
    assert api.is_suppressed(system.deps, A, "pat.kim@example.org")
    assert counts(system, news) == {"subscribed": 1, "bounced": 1}


def test_verp_token_with_recipient_id_on_the_envelope(system: System) -> None:
    news, _ = setup_lists(system, "jdoe@example.net")
    envelope = encode_return_path(CORPUS_KEY, account=A, campaign="c9", email="jdoe@example.net",
                                  domain="bounces.example.com", max_local_part=20)  # fmt: skip
    ingest.remember_campaign_ref(system.deps, A, "c9")  # as when campaign c9 started
    cmd = feed(system, (CORPUS / "postfix_hard_511.eml").read_bytes(), envelope)
    run(system)
    rec = ingest.ingest_record(system.deps, A, cmd.sha256)
    assert rec is not None and (rec["campaign"], rec["recipients"]) == ("c9", ["jdoe@example.net"])
    assert rec["verp"] == envelope
    assert status(system, news, "jdoe@example.net") == "bounced"


def test_a_parser_crash_keeps_the_raw_mail_and_dead_letters_the_command(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = (CORPUS / "qmail_hard.eml").read_bytes()

    def crash(raw: bytes, envelope_to: str | None = None) -> dsn.Classification:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(dsn, "classify", crash)
    cmd = feed(system, raw)
    assert system.runtime(concurrency=1).run_until(
        lambda: bool(system.queue.dead_letters()), timeout=60
    )
    [dead] = system.queue.dead_letters()
    assert "parser bug" in dead.error
    assert system.blobs.get(cmd.blob_key) == raw
    assert cmd.blob_key.endswith(hashlib.sha256(raw).hexdigest() + ".eml")

    monkeypatch.undo()  # fixed: a replay ingests it from the stored copy
    news, _ = setup_lists(system, "ghost@example.org")
    assert system.queue.replay() == 1
    run(system)
    assert status(system, news, "ghost@example.org") == "bounced"
