"""VERP return paths: round trip, tamper resistance, case folding, no exceptions."""

from __future__ import annotations

import string
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lunamail.lib.verp import (
    VerpToken,
    campaign_ref,
    decode_return_path,
    encode_return_path,
    recipient_id,
    return_path_ref,
)

KEY = b"0123456789abcdef0123456789abcdef"
OTHER = b"fedcba9876543210fedcba9876543210"

ids = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=64),
    st.binary(min_size=1, max_size=32).map(bytes.hex),
    st.uuids().map(str),
)
# Valid account ids: [a-z0-9][a-z0-9_-]{0,62}
accounts = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,62}\Z")
emails = st.builds(
    lambda local, dom: f"{local}@{dom}.example.com",
    st.text(alphabet=string.ascii_letters + string.digits + ".+_-", min_size=1, max_size=40),
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=30),
)


def keys(account: str) -> bytes:
    return KEY


def dec(
    addr: str, account: str = "acme", campaign: str = "c42", key: Callable[[str], bytes] = keys
) -> VerpToken | None:
    """Decode as feedback does: the account is known, the campaign comes from the
    reference lookup."""
    return decode_return_path(
        key, addr, account=account, campaign_for_ref=lambda ref: campaign if ref == campaign_ref(KEY, campaign) else None
    )


def enc(account: str = "acme", campaign: str = "c42", email: str = "sam@example.com") -> str:
    return encode_return_path(
        KEY, account=account, campaign=campaign, email=email, domain="bounces.example.com"
    )


def test_short_address_is_carried_in_full_and_fits_rfc_limit() -> None:
    addr = enc()
    local, _, domain = addr.partition("@")
    assert domain == "bounces.example.com"
    assert local.startswith("b+") and len(local) <= 64
    assert dec(addr) == VerpToken("acme", "c42", "sam@example.com")


def test_long_address_falls_back_to_recipient_id() -> None:
    email = "a.very.long.local.part.for.testing@subdomain.example.com"
    addr = enc(email=email)
    assert len(addr.partition("@")[0]) <= 64
    tok = dec(addr)
    assert tok is not None and tok.is_id and tok.email is None
    assert tok.email_or_id == recipient_id(email)
    assert tok.matches(email.upper()) and not tok.matches("someone@example.com")


def test_recipient_id_is_stable_and_normalised() -> None:
    assert recipient_id(" Sam@Example.COM ") == recipient_id("sam@example.com")
    assert recipient_id("sam@example.com") != recipient_id("sam@example.net")
    assert len(recipient_id("x@example.com")) == 16


@given(account=accounts, campaign=ids, email=emails, max_local=st.sampled_from([64, 200]))
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
    local = addr.rpartition("@")[0]
    assert len(local) <= max_local
    assert return_path_ref(addr) == campaign_ref(KEY, campaign)
    tok = dec(addr, account, campaign)
    assert tok is not None
    assert (tok.account, tok.campaign) == (account, campaign)
    assert tok.matches(email)
    if not tok.is_id:
        assert tok.email_or_id == email
    # Some MTAs case-fold local parts; the lowercase base32 token survives both ways.
    assert dec(addr.lower(), account, campaign) == tok
    assert dec(addr.upper(), account, campaign) == tok
    assert dec(f"<{addr}>", account, campaign) == tok
    # A campaign named in the returned original works without the lookup.
    assert decode_return_path(keys, addr, account=account, campaign_hints=["other", campaign]) == tok
    # The token is bound to its account and campaign.
    assert dec(addr, account + "x", campaign) is None
    assert decode_return_path(keys, addr, account=account, campaign_hints=[campaign + "x"]) is None


@given(account=accounts, campaign=ids, email=emails)
@settings(max_examples=500)
def test_local_part_fits_rfc5321_for_any_ids(account: str, campaign: str, email: str) -> None:
    """RFC 5321 4.5.3.1.1: a local part is at most 64 octets, whatever the ids."""
    addr = encode_return_path(KEY, account=account, campaign=campaign, email=email,
                              domain="bounces.example.org")
    local = addr.rpartition("@")[0]
    assert len(local.encode("utf-8")) <= 64
    assert dec(addr, account, campaign) is not None


@given(account=accounts, campaign=ids, email=emails, data=st.data())
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
    assert dec(forged, account, campaign) is None


@given(account=accounts, campaign=ids, email=emails)
def test_wrong_key_is_rejected(account: str, campaign: str, email: str) -> None:
    addr = encode_return_path(KEY, account=account, campaign=campaign, email=email, domain="x.org")
    assert dec(addr, account, campaign, key=lambda _a: OTHER) is None


@given(st.text(max_size=300))
@settings(max_examples=500)
def test_garbage_never_raises(text: str) -> None:
    got = decode_return_path(keys, text, account="acme", campaign_for_ref=lambda r: "c42",
                             campaign_hints=[text])
    assert got is None  # random text never carries a valid signature


def test_truncated_and_extended_tokens_are_rejected() -> None:
    addr = enc()
    local, _, domain = addr.partition("@")
    for bad in (local[:-1], local[:-2], local + "a", local + "aa", "b+", "b", "", "b+aaaa"):
        assert dec(f"{bad}@{domain}") is None


def test_unknown_account_lookup_errors_mean_no_token() -> None:
    def boom(account: str) -> bytes:
        raise KeyError(account)

    assert dec(enc(), key=boom) is None
    assert dec(enc(), key=lambda _a: b"") is None

    def lookup_fails(ref: str) -> str:
        raise KeyError(ref)

    assert decode_return_path(keys, enc(), account="acme", campaign_for_ref=lookup_fails) is None


def test_encode_refuses_unusable_inputs() -> None:
    with pytest.raises(ValueError):
        encode_return_path(b"", account="a", campaign="c", email="e@example.com", domain="x")
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
    tok = dec(addr, "acme", "c1")
    assert tok is not None and tok.email == "e@example.com"
