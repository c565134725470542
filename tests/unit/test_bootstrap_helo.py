"""The EHLO name defaults to the public host of ``lunamail serve``, not the machine's name."""

from __future__ import annotations

import pytest

from lunamail.runtime.bootstrap import helo_from_base_url


@pytest.mark.parametrize(
    ("base_url", "helo"),
    [
        ("https://mail.example.com", "mail.example.com"),
        ("https://mail.example.com:8443/lunamail", "mail.example.com"),
        ("http://127.0.0.1:8000", "[127.0.0.1]"),
        ("http://[2001:db8::1]:8000", "[IPv6:2001:db8::1]"),
        ("https://bücher.example", "xn--bcher-kva.example"),
        ("", "localhost"),
    ],
)
def test_helo_from_base_url(base_url: str, helo: str) -> None:
    assert helo_from_base_url(base_url) == helo
