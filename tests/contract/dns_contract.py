"""The Resolver contract: what ``domains check`` relies on, for every adapter.

Subclass ``ResolverContract`` and provide ``make``: ``make(zone)`` returns a resolver that
answers from the ``MemoryResolver`` ``zone`` (directly, or through real DNS packets), and
``unreachable()`` one that can get no answer at all.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lunamail.adapters.dns.memory import MemoryResolver
from lunamail.lib.dkim import generate_keys
from lunamail.ports.dns import DnsUnavailable, Resolver

Make = Callable[[MemoryResolver], Resolver]


class ResolverContract:
    @pytest.fixture
    def make(self) -> Make:
        raise NotImplementedError

    @pytest.fixture
    def unreachable(self) -> Resolver:
        raise NotImplementedError

    def test_a_long_txt_record_comes_back_whole(self, make: Make) -> None:
        _, record = generate_keys("rsa-sha256")  # ~400 characters: several TXT strings on the wire
        zone = MemoryResolver({"s1._domainkey.example.com": [record], "example.com": ["v=spf1 mx ~all", "other"]})
        resolver = make(zone)
        assert resolver.txt("s1._domainkey.example.com") == [record]
        assert sorted(resolver.txt("example.com")) == ["other", "v=spf1 mx ~all"]

    def test_names_ignore_case_and_the_final_dot(self, make: Make) -> None:
        resolver = make(MemoryResolver({"_dmarc.example.com": ["v=DMARC1; p=none"]}))
        assert resolver.txt("_DMARC.Example.com.") == ["v=DMARC1; p=none"]

    def test_a_missing_name_or_type_is_empty(self, make: Make) -> None:
        resolver = make(MemoryResolver({"example.com": ["v=spf1 -all"]}))
        assert resolver.txt("nothing.example.com") == []
        assert resolver.mx("example.com") == []  # the name exists, the type does not

    def test_mx_hosts_are_sorted_lower_case_without_the_dot(self, make: Make) -> None:
        resolver = make(MemoryResolver(mx={"bounce.example.com": [(20, "MX2.Example.net."), (10, "mx1.example.net")]}))
        assert resolver.mx("bounce.example.com") == [(10, "mx1.example.net"), (20, "mx2.example.net")]

    def test_no_answer_is_an_error_not_an_empty_zone(self, unreachable: Resolver) -> None:
        with pytest.raises(DnsUnavailable):
            unreachable.txt("example.com")
        with pytest.raises(DnsUnavailable):
            unreachable.mx("example.com")
