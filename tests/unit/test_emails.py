"""The fast syntax check agrees with email-validator, the reference, on what it accepts."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lunamail.lib import emails


def reference(raw: str) -> str | None:
    """email-validator's verdict under our policy (ASCII local part, strict lengths)."""
    try:
        v = validate_email(
            raw.strip(), check_deliverability=False, allow_smtputf8=False, strict=True
        )
    except EmailNotValidError:
        return None
    return f"{v.local_part}@{v.ascii_domain}"


TRICKY = [
    ("john.doe@example.com", "john.doe@example.com"),
    ("  John.Doe@EXAMPLE.Com \t", "John.Doe@example.com"),
    ("a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"),
    ("o'reilly@example.ie", "o'reilly@example.ie"),
    ("user@bücher.de", "user@xn--bcher-kva.de"),
    ("user@BÜCHER.DE", "user@xn--bcher-kva.de"),
    ("user@xn--bcher-kva.de", "user@xn--bcher-kva.de"),
    ("x@例え.jp", "x@xn--r8jz45g.jp"),
    ("a@b.c0m", "a@b.c0m"),
    ("a@1.2.3.com", "a@1.2.3.com"),
    ("plainaddress", None),
    ("@example.com", None),
    ("user@", None),
    ("a@b@example.com", None),
    (".a@example.com", None),
    ("a.@example.com", None),
    ("a..b@example.com", None),
    ("a b@example.com", None),
    ('"quoted"@example.com', None),
    ("user@localhost", None),
    ("user@example", None),
    ("user@example.123", None),
    ("user@-example.com", None),
    ("user@example-.com", None),
    ("user@exa_mple.com", None),
    ("user@example..com", None),
    ("user@example.com.", None),
    ("user@ab--cd.com", None),
    ("user@xn--zz.com", None),
    ("user@foo.test", None),
    ("user@foo.onion", None),
    ("user@[127.0.0.1]", None),
    ("üser@example.com", None),
    ("x" * 65 + "@example.com", None),
    ("x" * 64 + "@example.com", "x" * 64 + "@example.com"),
    ("a@" + "b" * 64 + ".com", None),
    ("a@" + ".".join(["b" * 50] * 5) + ".com", None),
    ("a@" + ".".join(["b" * 60] * 4) + ".com", "a@" + ".".join(["b" * 60] * 4) + ".com"),
    ("Name <a@example.com>", None),
    ("", None),
]


@pytest.mark.parametrize(("raw", "expected"), TRICKY)
def test_tricky_cases(raw: str, expected: str | None) -> None:
    assert emails.check(raw)[0] == expected
    assert reference(raw) == expected


def test_reasons_say_what_is_wrong() -> None:
    assert emails.check("nobody")[1] == "missing @"
    assert emails.check("a@b@c.com")[1] == "more than one @"
    assert emails.check("a@nodot")[1] == "domain has no dot"
    assert emails.check("x" * 65 + "@e.com")[1] == "local part longer than 64 characters"
    with pytest.raises(emails.InvalidEmail, match="nothing after the @"):
        emails.normalize("a@")


@pytest.mark.parametrize(
    ("email", "role"),
    [("info@x.com", True), ("NoReply@x.com", True), ("postmaster+a@x.com", True),
     ("sales@x.com", True), ("jane@x.com", False), ("information@x.com", False)],
)  # fmt: skip
def test_role_addresses_are_flagged(email: str, role: bool) -> None:
    assert emails.is_role(email) is role


_LOCAL_CHARS = "abcXYZ019.+-_'!#$%&*/=?^`{|}~@ \"()<>,;:\\[]é"
_DOMAIN_CHARS = "abcXY09.-_@ "
_TLDS = ["com", "io", "c0m", "123", "test", "de", "", "x", "co.uk", "xn--p1ai"]


@st.composite
def addresses(draw: st.DrawFn) -> str:
    local = draw(st.text(_LOCAL_CHARS, min_size=0, max_size=70))
    domain = draw(st.text(_DOMAIN_CHARS, min_size=0, max_size=20))
    tld = draw(st.sampled_from(_TLDS))
    sep = draw(st.sampled_from(["@", "@", "@", "", "@@"]))
    return f"{local}{sep}{domain}.{tld}" if tld else f"{local}{sep}{domain}"


@settings(max_examples=1000, deadline=None)
@given(addresses())
@example("a@b.co")
@example("a-@b.co")
def test_agrees_with_email_validator(raw: str) -> None:
    assert emails.check(raw)[0] == reference(raw)


@settings(max_examples=200, deadline=None)
@given(st.emails())
def test_accepts_what_hypothesis_calls_an_email(raw: str) -> None:
    assert emails.check(raw)[0] == reference(raw)
