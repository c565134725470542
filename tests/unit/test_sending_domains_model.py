"""The pure rules of sending domains: states, record verdicts, zone-file lines."""

from __future__ import annotations

from lunamail.domain.sending_domains import (
    DnsRecord,
    judge_dkim,
    judge_dmarc,
    judge_spf,
    state_after,
    txt_tags,
)
from lunamail.lib.dkim import generate_keys


def test_states_follow_the_checks_and_no_answer_is_no_news() -> None:
    assert state_after("pending", ["ok", "missing"]) == "pending"
    assert state_after("pending", ["ok", "ok"]) == "verified"
    assert state_after("verified", ["ok", "wrong"]) == "failing"
    assert state_after("failing", ["ok", "ok"]) == "verified"
    assert state_after("failing", ["missing"]) == "failing"
    assert state_after("verified", ["ok", "unknown"]) == "verified"
    assert state_after("pending", ["unknown"]) == "pending"


def test_record_verdicts() -> None:
    _, record = generate_keys("rsa-sha256")
    split = record.replace("; p=", ";\tp= ")  # whitespace inside the value is not significant
    assert judge_dkim(record, [split]) == ("ok", "")
    assert judge_dkim(record, []) == ("missing", "")
    assert judge_dkim(record, ["v=DKIM1; k=rsa; p=AAAA"])[0] == "wrong"
    assert judge_spf("include:amazonses.com", ["v=spf1 +include:amazonses.com -all", "google-site=x"]) == ("ok", "")
    assert judge_spf("include:amazonses.com", ["v=spf1 mx ~all"])[0] == "wrong"
    assert judge_spf("include:amazonses.com", ["v=spf1 mx", "v=spf1 a"])[1].startswith("two SPF records")
    assert judge_dmarc(["v=DMARC1; p=reject"]) == ("ok", "")
    assert judge_dmarc(["something else"])[0] == "wrong"
    assert txt_tags("v=DKIM1; k=ed25519; p=ab cd") == {"v": "DKIM1", "k": "ed25519", "p": "abcd"}


def test_a_long_txt_record_is_one_zone_line_of_quoted_strings_of_at_most_255() -> None:
    _, record = generate_keys("rsa-sha256")
    line = DnsRecord("dkim", "TXT", "s._domainkey.example.com", record).zone_line()
    name, ttl, cls, typ, data = line.split(" ", 4)
    assert (name, ttl, cls, typ) == ("s._domainkey.example.com.", "3600", "IN", "TXT")
    parts = data[1:-1].split('" "')
    assert len(parts) == 2 and all(len(p) <= 255 for p in parts) and "".join(parts) == record
