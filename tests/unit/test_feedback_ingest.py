"""Raw feedback ingest: stored first, classified, mapped through VERP, recorded once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lunamail.adapters.blobs.files import FileBlobs
from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.config import Settings
from lunamail.domain.feedback import AutoReplied, Bounced, Complained, DeliveryDelayed, IngestRaw
from lunamail.domain.messages import Message, from_json
from lunamail.lib import tokens
from lunamail.lib.verp import encode_return_path
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.ports.secrets import DerivedSecrets
from lunamail.services.feedback import dsn, handlers, ingest

CORPUS = Path(__file__).resolve().parents[1] / "data" / "dsn"
CORPUS_KEY = b"lunamail-corpus-key"  # the key the corpus VERP tokens were made with
A = "acme"


class CorpusSecrets:
    """Real derived keys, except VERP: the corpus key, as if the corpus mail were ours."""

    def __init__(self) -> None:
        self._derived = DerivedSecrets(b"s" * 32)

    def key(self, account: str, purpose: str) -> bytes:
        return CORPUS_KEY if purpose == tokens.VERP else self._derived.key(account, purpose)


@pytest.fixture
def deps(tmp_path: Path) -> Deps:
    clock = FakeClock()
    d = Deps(
        settings=Settings(data_dir=tmp_path),
        store=MemoryItemStore(clock=clock),
        blobs=FileBlobs(
            tmp_path / "blobs", base_url="http://x", signing_key=b"k" * 32, clock=clock
        ),
        clock=clock,
        secrets=CorpusSecrets(),
    )
    # What the feedback handler of CampaignSendStarted records when the corpus campaign starts.
    ingest.remember_campaign_ref(d, A, "spring-sale")
    return d


def raw(case: str) -> bytes:
    return (CORPUS / f"{case}.eml").read_bytes()


def body(msg: Message) -> dict[str, Any]:
    """A message's fields, whatever its class."""
    return dict(msg.to_dict()["body"])


def ingest_bytes(
    deps: Deps, data: bytes, envelope_to: str | None = None, account: str = A
) -> list[Message]:
    return handlers.ingest_raw(ingest.store_raw(deps, account, data, envelope_to), deps)


def test_hard_bounce_maps_to_the_verp_recipient_and_campaign(deps: Deps) -> None:
    events = ingest_bytes(deps, raw("postfix_hard_511"))
    assert len(events) == 1
    ev = events[0]
    assert isinstance(ev, Bounced)
    assert (ev.account, ev.email, ev.campaign, ev.bounce_type, ev.status, ev.source) == (
        A, "jdoe@example.net", "spring-sale", "hard", "5.1.1", "dsn"
    )  # fmt: skip
    assert "User unknown" in (ev.diagnostic or "")
    assert ev.id and ev.at == deps.clock.now()
    assert from_json(ev.to_json()) == ev  # crosses the queue intact


def test_bounce_without_token_uses_the_report_and_the_originals_campaign_header(deps: Deps) -> None:
    [ev] = ingest_bytes(deps, raw("gmail_hard_511"))
    assert isinstance(ev, Bounced)
    assert (ev.email, ev.campaign, ev.bounce_type) == (
        "sam.rivera@example.com",
        "spring-sale",
        "hard",
    )


@pytest.mark.parametrize(
    ("case", "cls", "email"),
    [
        ("postfix_soft_422_quota", Bounced, "pat.kim@example.org"),
        ("gmail_soft_421_rate", Bounced, "avery@example.net"),
        ("arf_yahoo_abuse", Complained, "casey@example.com"),
        ("arf_microsoft_jmrp", Complained, "morgan@example.net"),
        ("postfix_delayed", DeliveryDelayed, "robin@example.org"),
        ("autoreply_ooo_auto_submitted", AutoReplied, "taylor@example.com"),
        ("autoreply_subject_x_autoreply", AutoReplied, "jordan@example.org"),
    ],
)
def test_each_kind_becomes_its_event(deps: Deps, case: str, cls: type[Message], email: str) -> None:
    events = ingest_bytes(deps, raw(case))
    assert [type(e) for e in events] == [cls]
    assert body(events[0])["email"] == email
    assert body(events[0])["campaign"] == "spring-sale"
    if isinstance(events[0], Bounced):
        assert events[0].bounce_type == "soft"
    if isinstance(events[0], Complained):
        assert events[0].source == "arf"


def test_auto_reply_is_never_a_bounce(deps: Deps) -> None:
    events = ingest_bytes(deps, raw("autoreply_ooo_auto_submitted"))
    assert not any(isinstance(e, Bounced) for e in events)
    rec = ingest.ingest_record(deps, A, _sha(raw("autoreply_ooo_auto_submitted")))
    assert rec is not None and rec["kind"] == "auto-reply"


def test_a_token_of_another_account_is_not_trusted(deps: Deps) -> None:
    [ev] = ingest_bytes(deps, raw("postfix_hard_511"), account="other")
    assert isinstance(ev, Bounced)
    assert (ev.account, ev.email) == ("other", "jdoe@example.net")  # from the report
    rec = ingest.ingest_record(deps, "other", _sha(raw("postfix_hard_511")))
    assert rec is not None and rec["verp"] is None


def test_a_token_carrying_a_recipient_id_is_matched_against_the_report(deps: Deps) -> None:
    short = encode_return_path(CORPUS_KEY, account=A, campaign="c-long", email="jdoe@example.net",
                               domain="bounces.example.com", max_local_part=20)  # fmt: skip
    ingest.remember_campaign_ref(deps, A, "c-long")
    [ev] = ingest_bytes(deps, raw("postfix_hard_511"), envelope_to=short)
    assert isinstance(ev, Bounced)
    assert (ev.email, ev.campaign) == ("jdoe@example.net", "c-long")
    rec = ingest.ingest_record(deps, A, _sha(raw("postfix_hard_511")))
    assert rec is not None and rec["verp"] == short


MINIMAL_DSN = """\
From: MAILER-DAEMON@mx.example.org
To: bounces@bounces.example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--B
Content-Type: text/rfc822-headers

From: news@acme.example.com
To: {rcpt}
Subject: Hello
X-Lunamail-Token: {token}

--B--
"""


def test_the_x_lunamail_token_header_of_the_original_maps_the_bounce(deps: Deps) -> None:
    path = encode_return_path(CORPUS_KEY, account=A, campaign="fall", email="Zed@example.com",
                              domain="bounces.example.com")  # fmt: skip
    data = MINIMAL_DSN.format(rcpt="zed@example.com", token=path.partition("@")[0]).encode()
    ingest.remember_campaign_ref(deps, A, "fall")
    [ev] = ingest_bytes(deps, data)
    assert isinstance(ev, Bounced)
    # the token's address (as sent, case kept) wins over the report's lower-cased copy
    assert (ev.email, ev.campaign, ev.bounce_type) == ("Zed@example.com", "fall", "hard")


def test_unmapped_bounce_is_still_emitted_with_an_empty_campaign(deps: Deps) -> None:
    data = (
        MINIMAL_DSN.replace("X-Lunamail-Token: {token}\n", "")
        .format(rcpt="ann@example.com")
        .encode()
    )
    [ev] = ingest_bytes(deps, data)
    assert isinstance(ev, Bounced)
    assert (ev.email, ev.campaign, ev.bounce_type, ev.status) == (
        "ann@example.com",
        "",
        "hard",
        "5.1.1",
    )


def test_other_mail_is_kept_but_emits_nothing(deps: Deps) -> None:
    data = b"From: friend@example.com\r\nTo: news@acme.example.com\r\nSubject: thanks\r\n\r\nGreat issue!\r\n"
    assert ingest_bytes(deps, data) == []
    rec = ingest.ingest_record(deps, A, _sha(data))
    assert rec is not None and (rec["kind"], rec["status"]) == ("other", "done")
    assert deps.blobs.get(rec["blob_key"]) == data


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_raw_bytes_are_stored_content_addressed_before_parsing(deps: Deps) -> None:
    data = raw("qmail_hard")
    cmd = ingest.store_raw(deps, A, data, None)
    day = "2023/11/14"  # FakeClock starts at 1_700_000_000
    assert cmd.blob_key == f"inbound/{A}/{day}/{_sha(data)}.eml"
    assert deps.blobs.get(cmd.blob_key) == data
    rec = ingest.ingest_record(deps, A, cmd.sha256)
    assert rec is not None and rec["status"] == "stored"


def test_reingesting_the_same_bytes_is_a_no_op(deps: Deps) -> None:
    data = raw("sendmail_hard_511")
    first = ingest_bytes(deps, data)
    assert len(first) == 1
    deps.clock.advance(3 * 86400)  # type: ignore[attr-defined]  # another day: still one copy
    again = ingest.store_raw(deps, A, data, None)
    assert handlers.ingest_raw(again, deps) == []
    assert list(deps.blobs.list("inbound/")) == [again.blob_key]


def test_a_redelivered_command_re_emits_the_same_events(deps: Deps) -> None:
    cmd = ingest.store_raw(deps, A, raw("yahoo_hard_554"), None)
    first = handlers.ingest_raw(cmd, deps)
    replay = handlers.ingest_raw(from_json(cmd.to_json()), deps)  # type: ignore[arg-type]
    assert first and replay == first


def test_a_parser_crash_leaves_the_blob_and_propagates(
    deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = raw("exim_hard_plain")

    def boom(raw: bytes, envelope_to: str | None = None) -> dsn.Classification:
        raise RuntimeError("parser bug")

    cmd = ingest.store_raw(deps, A, data, None)
    monkeypatch.setattr(dsn, "classify", boom)
    with pytest.raises(RuntimeError, match="parser bug"):
        handlers.ingest_raw(cmd, deps)
    assert deps.blobs.get(cmd.blob_key) == data
    rec = ingest.ingest_record(deps, A, cmd.sha256)
    assert rec is not None and rec["status"] == "stored"
    monkeypatch.undo()  # the fixed parser: the retry (or a DLQ replay) succeeds
    [ev] = handlers.ingest_raw(cmd, deps)
    assert isinstance(ev, Bounced) and ev.email == "chris@example.com"


def test_store_raw_refuses_a_bad_account(deps: Deps) -> None:
    with pytest.raises(ValueError, match="invalid account"):
        ingest.store_raw(deps, "../x", b"data", None)


def test_ingest_command_round_trips() -> None:
    cmd = IngestRaw(account=A, blob_key="inbound/a/b.eml", envelope_to=None, sha256="ab",
                    received_at=1.5, ingest_id="x")  # fmt: skip
    assert from_json(cmd.to_json()) == cmd
