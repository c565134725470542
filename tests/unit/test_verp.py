"""VERP return paths: round trip, tamper resistance, case folding, no exceptions."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lunamail.lib.verp import (
    VerpToken,
    decode_return_path,
    encode_return_path,
    recipient_id,
)

KEY = b"0123456789abcdef0123456789abcdef"
OTHER = b"fedcba9876543210fedcba9876543210"

ids = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=20),
    st.binary(min_size=1, max_size=16).map(bytes.hex),
    st.uuids().map(str),
)
emails = st.builds(
    lambda local, dom: f"{local}@{dom}.example.com",
    st.text(alphabet=string.ascii_letters + string.digits + ".+_-", min_size=1, max_size=40),
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=30),
)


def keys(account: str) -> bytes:
    return KEY


def enc(account: str = "acme", campaign: str = "c42", email: str = "sam@example.com") -> str:
    return encode_return_path(
        KEY, account=account, campaign=campaign, email=email, domain="bounces.example.com"
    )


def test_short_address_is_carried_in_full_and_fits_rfc_limit() -> None:
    addr = enc()
    local, _, domain = addr.partition("@")
    assert domain == "bounces.example.com"
    assert local.startswith("b+") and len(local) <= 64
    assert decode_return_path(keys, addr) == VerpToken("acme", "c42", "sam@example.com")


def test_long_address_falls_back_to_recipient_id() -> None:
    email = "a.very.long.local.part.for.testing@subdomain.example.com"
    addr = enc(email=email)
    assert len(addr.partition("@")[0]) <= 64
    tok = decode_return_path(keys, addr)
    assert tok is not None and tok.is_id and tok.email is None
    assert tok.email_or_id == recipient_id(email)
    assert tok.matches(email.upper()) and not tok.matches("someone@example.com")


def test_recipient_id_is_stable_and_normalised() -> None:
    assert recipient_id(" Sam@Example.COM ") == recipient_id("sam@example.com")
    assert recipient_id("sam@example.com") != recipient_id("sam@example.net")
    assert len(recipient_id("x@example.com")) == 16


@given(account=ids, campaign=ids, email=emails, max_local=st.sampled_from([64, 200]))
@settings(max_examples=300)
def test_round_trip(account: str, campaign: str, email: str, max_local: int) -> None:
    addr = encode_return_path(
        KEY,
        account=account,
        campaign=campaign,
        email=email,
        domain="example.org",
        max_local_part=max_local,
    )
    tok = decode_return_path(keys, addr)
    assert tok is not None
    assert (tok.account, tok.campaign) == (account, campaign)
    assert tok.matches(email)
    if not tok.is_id:
        assert tok.email_or_id == email
    # Some MTAs case-fold local parts; the lowercase base32 token survives both ways.
    assert decode_return_path(keys, addr.lower()) == tok
    assert decode_return_path(keys, addr.upper()) == tok
    assert decode_return_path(keys, f"<{addr}>") == tok


@given(account=ids, campaign=ids, email=emails, data=st.data())
@settings(max_examples=300)
def test_any_single_char_change_is_rejected(
    account: str, campaign: str, email: str, data: st.DataObject
) -> None:
    addr = encode_return_path(KEY, account=account, campaign=campaign, email=email, domain="x.org")
    local = addr.partition("@")[0]
    pos = data.draw(st.integers(min_value=2, max_value=len(local) - 1))
    repl = data.draw(
        st.sampled_from("abcdefghijklmnopqrstuvwxyz234567").filter(lambda c: c != local[pos])
    )
    forged = local[:pos] + repl + local[pos + 1 :] + "@x.org"
    assert decode_return_path(keys, forged) is None


@given(account=ids, campaign=ids, email=emails)
def test_wrong_key_is_rejected(account: str, campaign: str, email: str) -> None:
    addr = encode_return_path(KEY, account=account, campaign=campaign, email=email, domain="x.org")
    assert decode_return_path(lambda _a: OTHER, addr) is None


@given(st.text(max_size=300))
@settings(max_examples=500)
def test_garbage_never_raises(text: str) -> None:
    assert decode_return_path(keys, text) is None or isinstance(
        decode_return_path(keys, text), VerpToken
    )


def test_truncated_and_extended_tokens_are_rejected() -> None:
    addr = enc()
    local, _, domain = addr.partition("@")
    for bad in (local[:-1], local[:-2], local + "a", local + "aa", "b+", "b", "", "b+aaaa"):
        assert decode_return_path(keys, f"{bad}@{domain}") is None


def test_unknown_account_lookup_errors_mean_no_token() -> None:
    def boom(account: str) -> bytes:
        raise KeyError(account)

    assert decode_return_path(boom, enc()) is None
    assert decode_return_path(lambda _a: b"", enc()) is None


def test_encode_refuses_unusable_inputs() -> None:
    with pytest.raises(ValueError):
        encode_return_path(b"", account="a", campaign="c", email="e@example.com", domain="x")
    with pytest.raises(ValueError):
        encode_return_path(KEY, account="x" * 64, campaign="c", email="e@example.com", domain="x")
    with pytest.raises(ValueError):
        encode_return_path(
            KEY, account="a", campaign="c", email="e@example.com", domain="x", local_prefix="b+x"
        )


def test_other_separators_decode() -> None:
    addr = encode_return_path(
        KEY,
        account="acme",
        campaign="c1",
        email="e@example.com",
        domain="x.org",
        local_prefix="bounce",
        separator="-",
    )
    assert addr.startswith("bounce-")
    tok = decode_return_path(keys, addr)
    assert tok is not None and tok.email == "e@example.com"
