"""Signatures made with ``cryptography`` must verify with an independent verifier (dkimpy)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import dkim
import pytest

from lunamail.lib.dkim import DkimSigner, MultiSigner, canonical_body, generate_keys, signing_domain
from lunamail.lib.mime import CampaignMime


@cache
def keys(algorithm: str) -> tuple[bytes, str]:
    return generate_keys(algorithm)  # type: ignore[arg-type]


def dns_for(records: dict[str, str]) -> Callable[..., bytes | None]:
    table = {f"{sel}._domainkey.example.com.".encode(): txt.encode() for sel, txt in records.items()}

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return table.get(name)

    return lookup


def sample(subject: str = "Grüße aus Köln — ünïcode ✓", text: str = "Hallo Jörg,\n.\nFrom here  \n\n\n") -> bytes:
    c = CampaignMime(from_email="news@example.com", from_name="Köln Shop", list_id="news.example.com")
    return c.build(
        to_email="joerg@example.org",
        to_name="Jörg Müller",
        subject=subject,
        html="<p>Grüße</p>\n\t<p>trailing \t </p>",
        text=text,
        unsubscribe_url="https://example.com/u/t0k3n",
        message_id="<abc@example.com>",
        date=1_700_000_000,
    )


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
def test_signature_verifies_and_covers_unsubscribe(algorithm: str) -> None:
    pem, txt = keys(algorithm)
    signed = DkimSigner("example.com", "s1", pem, algorithm).sign(sample())  # type: ignore[arg-type]
    assert dkim.verify(signed, dnsfunc=dns_for({"s1": txt}))
    head = signed.split(b"\r\n\r\n", 1)[0].decode()
    sig = head.split("\r\nDate:", 1)[0].replace("\r\n\t", "")
    h = sig.split("h=", 1)[1].split(";", 1)[0].split(":")
    assert {"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post",
            "mime-version", "content-type"} <= set(h)
    assert f"a={algorithm}" in sig and "c=relaxed/relaxed" in sig and " t=" in sig
    assert max(len(line) for line in head.split("\r\n")) <= 78


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.replace(b"Hallo", b"Hallo!"),  # body
        lambda m: m.replace(b"https://example.com/u/t0k3n", b"https://evil.example/u/t0k3n"),  # header
        lambda m: m.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: x"),
    ],
)
def test_tampered_message_fails(algorithm: str, tamper: Callable[[bytes], bytes]) -> None:
    pem, txt = keys(algorithm)
    signed = DkimSigner("example.com", "s1", pem, algorithm).sign(sample())  # type: ignore[arg-type]
    tampered = tamper(signed)
    assert tampered != signed
    assert not dkim.verify(tampered, dnsfunc=dns_for({"s1": txt}))


def test_relaxed_canonicalisation_tolerates_whitespace_changes() -> None:
    pem, txt = keys("rsa-sha256")
    signed = DkimSigner("example.com", "s1", pem).sign(sample())
    relayed = signed.replace(b"Subject: ", b"Subject:   ").replace(b"Hallo J", b"Hallo \t J") + b"\r\n\r\n"
    assert dkim.verify(relayed, dnsfunc=dns_for({"s1": txt}))


def test_rsa_plus_ed25519_double_signature() -> None:
    (rpem, rtxt), (epem, etxt) = keys("rsa-sha256"), keys("ed25519-sha256")
    signer = MultiSigner(
        [DkimSigner("example.com", "rsa", rpem), DkimSigner("example.com", "ed", epem, "ed25519-sha256")]
    )
    signed = signer.sign(sample())
    d = dkim.DKIM(signed)
    lookup = dns_for({"rsa": rtxt, "ed": etxt})
    assert d.verify(0, dnsfunc=lookup)
    assert d.verify(1, dnsfunc=lookup)
    assert signed.count(b"DKIM-Signature:") == 2


def test_key_type_must_match_algorithm() -> None:
    with pytest.raises(ValueError):
        DkimSigner("example.com", "s1", keys("ed25519-sha256")[0], "rsa-sha256")
    with pytest.raises(ValueError):
        DkimSigner("example.com", "s1", keys("rsa-sha256")[0], "ed25519-sha256")


def test_dns_record_shape() -> None:
    assert keys("rsa-sha256")[1].startswith("v=DKIM1; k=rsa; p=MII")
    assert keys("ed25519-sha256")[1].startswith("v=DKIM1; k=ed25519; p=")


@pytest.mark.parametrize(
    ("body", "canon"),
    [
        (b"", b""),
        (b"\r\n\r\n", b""),
        (b"a  b \t\r\nc\t\r\n\r\n\r\n", b"a b\r\nc\r\n"),
        (b"no newline  ", b"no newline\r\n"),
        (b" lead\r\n", b" lead\r\n"),
    ],
)
def test_canonical_body(body: bytes, canon: bytes) -> None:
    assert canonical_body(body) == canon


def _campaign_message() -> bytes:
    c = CampaignMime(from_email="news@example.com", from_name="Shop")
    return c.build(
        to_email="ann@example.org", subject="Hello", html="<p>Hi</p>", text="Hi",
        unsubscribe_url="https://example.com/u/t0k3n", message_id="<m1@example.com>", date=1_700_000_000,
        list_id="l1.acct.example.com", feedback_id="c1:l1:acct:lunamail",
    )


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
def test_feedback_id_is_signed_and_the_key_headers_are_oversigned(algorithm: str) -> None:
    pem, txt = keys(algorithm)
    signed = DkimSigner("example.com", "s1", pem, algorithm).sign(_campaign_message())  # type: ignore[arg-type]
    assert dkim.verify(signed, dnsfunc=dns_for({"s1": txt}))
    sig = signed.split(b"\r\nFrom:", 1)[0].decode().replace("\r\n\t", "")
    h = sig.split("h=", 1)[1].split(";", 1)[0].split(":")
    for name in ("from", "subject", "list-unsubscribe", "list-unsubscribe-post", "feedback-id"):
        assert h.count(name) == 2, (name, h)  # present once, signed twice: no second copy can be added
    assert "list-id" in h
    # a header added after signing (a second Subject, From or Feedback-ID) breaks the signature
    head, body = signed.split(b"\r\n\r\n", 1)
    for extra in (b"Subject: Win a prize", b"From: other@example.net", b"Feedback-ID: x:y:z:w",
                  b"List-Unsubscribe: <https://evil.example/u>"):
        assert not dkim.verify(head + b"\r\n" + extra + b"\r\n\r\n" + body, dnsfunc=dns_for({"s1": txt}))


def test_a_subdomain_is_signed_with_its_parents_key_under_relaxed_alignment() -> None:
    keys = ["example.com", "mail.example.org"]
    assert signing_domain(keys, "example.com") == "example.com"
    assert signing_domain(keys, "news.example.com") == "example.com"
    assert signing_domain(keys, "a.b.mail.example.org") == "mail.example.org"
    assert signing_domain(keys, "example.org") is None  # a child's key never signs for its parent
    assert signing_domain(keys, "notexample.com") is None
