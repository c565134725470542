"""SNS signature verification against payloads signed in the test with a throwaway CA-less
certificate standing in for AWS's (the fetch function and host pattern are the trust anchor)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from lunamail.services.feedback.sns import SnsVerificationError, SnsVerifier, canonical_string

EVENTS = Path(__file__).resolve().parents[1] / "events"
NOW = dt.datetime(2024, 5, 14, 9, 13, tzinfo=dt.UTC).timestamp()
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_cert(
    key: Any = KEY, *, days_before: int = 30, days_after: int = 365, hash_alg: Any = None
) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.fromtimestamp(NOW, dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=days_before))
        .not_valid_after(now + dt.timedelta(days=days_after))
        .sign(key, hash_alg or hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


GOOD_PEM = make_cert()


def string_to_sign(p: dict[str, Any]) -> bytes:
    """Written out independently of the module, straight from the SNS documentation."""
    if p["Type"] == "Notification":
        keys = (
            ["Message", "MessageId"]
            + (["Subject"] if "Subject" in p else [])
            + [
                "Timestamp",
                "TopicArn",
                "Type",
            ]
        )
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{k}\n{p[k]}\n" for k in keys).encode()


def signed(fixture: str, key: Any = KEY) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads((EVENTS / fixture).read_bytes())
    algo = hashes.SHA1() if payload["SignatureVersion"] == "1" else hashes.SHA256()
    sig = key.sign(string_to_sign(payload), padding.PKCS1v15(), algo)
    payload["Signature"] = base64.b64encode(sig).decode()
    return payload


class Fetcher:
    """Fake certificate fetch that records every URL it was asked for."""

    def __init__(self, pem: bytes = GOOD_PEM) -> None:
        self.pem = pem
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        return self.pem


def verifier(fetch: Fetcher, **kw: Any) -> SnsVerifier:
    return SnsVerifier(fetch, now=lambda: NOW, **kw)


@pytest.mark.parametrize(
    "fixture",
    [
        "sns_notification.json",  # v1 (SHA1), with Subject
        "sns_notification_no_subject.json",  # v2 (SHA256), no Subject
        "sns_subscription_confirmation.json",
        "sns_unsubscribe_confirmation.json",
    ],
)
def test_valid_messages_verify(fixture: str) -> None:
    fetch = Fetcher()
    verifier(fetch).verify(signed(fixture))
    assert fetch.calls == [signed(fixture)["SigningCertURL"]]


def test_canonical_string_matches_the_documented_layout() -> None:
    for fixture in ("sns_notification.json", "sns_subscription_confirmation.json"):
        payload = orjson.loads((EVENTS / fixture).read_bytes())
        assert canonical_string(payload) == string_to_sign(payload)


def test_certificate_is_cached_by_url() -> None:
    fetch = Fetcher()
    v = verifier(fetch)
    v.verify(signed("sns_notification.json"))
    v.verify(signed("sns_subscription_confirmation.json"))
    assert len(fetch.calls) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Message", '{"notificationType":"Bounce","bounce":{}}'),
        ("MessageId", "00000000-0000-0000-0000-000000000000"),
        ("Subject", "Something else"),
        ("Timestamp", "2024-05-14T09:12:41.875Z"),
        ("TopicArn", "arn:aws:sns:us-east-1:999999999999:other"),
        ("Type", "SubscriptionConfirmation"),
    ],
)
def test_tampered_fields_are_refused(field: str, value: str) -> None:
    payload = signed("sns_notification.json")
    payload[field] = value
    with pytest.raises(SnsVerificationError):
        verifier(Fetcher()).verify(payload)


def test_dropped_subject_is_refused() -> None:
    payload = signed("sns_notification.json")
    del payload["Subject"]
    with pytest.raises(SnsVerificationError, match="signature"):
        verifier(Fetcher()).verify(payload)


def test_signature_by_another_key_is_refused() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(SnsVerificationError, match="signature"):
        verifier(Fetcher()).verify(signed("sns_notification.json", key=other))


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-x.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com@evil.example/x.pem",
        "https://sns.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem?redirect=https://evil.example/",
        "https://sns.us-east-1.amazonaws.com/not-a-cert",
        "file:///etc/ssl/cert.pem",
        "",
    ],
)
def test_untrusted_cert_urls_are_refused_without_fetching(url: str) -> None:
    payload = signed("sns_notification.json")
    payload["SigningCertURL"] = url
    fetch = Fetcher()
    with pytest.raises(SnsVerificationError):
        verifier(fetch).verify(payload)
    assert fetch.calls == []


def test_china_region_host_is_trusted_by_default() -> None:
    payload = signed("sns_notification.json")
    payload["SigningCertURL"] = (
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem"
    )
    verifier(Fetcher()).verify(payload)


def test_host_pattern_is_injectable() -> None:
    payload = signed("sns_notification.json")
    payload["SigningCertURL"] = "https://sns.local.test/cert.pem"
    with pytest.raises(SnsVerificationError):
        verifier(Fetcher()).verify(payload)
    verifier(Fetcher(), trusted_hosts_pattern=r"sns\.local\.test").verify(payload)


def test_expired_and_not_yet_valid_certificates_are_refused() -> None:
    expired = Fetcher(make_cert(days_before=400, days_after=-1))
    with pytest.raises(SnsVerificationError, match="expired"):
        verifier(expired).verify(signed("sns_notification.json"))
    future = Fetcher(make_cert(days_before=-1, days_after=30))
    with pytest.raises(SnsVerificationError, match="expired"):
        verifier(future).verify(signed("sns_notification.json"))


def test_cached_certificate_expiring_later_is_refused_then() -> None:
    clock = [NOW]
    fetch = Fetcher(make_cert(days_after=1))
    v = SnsVerifier(fetch, now=lambda: clock[0])
    v.verify(signed("sns_notification.json"))
    clock[0] = NOW + 2 * 86400
    with pytest.raises(SnsVerificationError, match="expired"):
        v.verify(signed("sns_notification.json"))


@pytest.mark.parametrize("version", ["3", "0", 1, None, ""])
def test_unknown_signature_version_is_refused(version: Any) -> None:
    payload = signed("sns_notification.json")
    payload["SignatureVersion"] = version
    fetch = Fetcher()
    with pytest.raises(SnsVerificationError, match="SignatureVersion"):
        verifier(fetch).verify(payload)
    assert fetch.calls == []


def test_v1_signature_does_not_pass_as_v2() -> None:
    payload = signed("sns_notification.json")
    payload["SignatureVersion"] = "2"
    with pytest.raises(SnsVerificationError, match="signature"):
        verifier(Fetcher()).verify(payload)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.pop("Message"),
        lambda p: p.update(Message=None),
        lambda p: p.update(Signature="not base64!!"),
        lambda p: p.update(Signature=""),
        lambda p: p.update(Type="Unknown"),
        lambda p: p.pop("SigningCertURL"),
    ],
)
def test_malformed_payloads_are_refused(mutate: Any) -> None:
    payload = signed("sns_notification.json")
    mutate(payload)
    with pytest.raises(SnsVerificationError):
        verifier(Fetcher()).verify(payload)


def test_unusable_certificates_are_refused() -> None:
    with pytest.raises(SnsVerificationError, match="certificate"):
        verifier(Fetcher(b"not a pem")).verify(signed("sns_notification.json"))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SnsVerificationError, match="RSA"):
        verifier(Fetcher(make_cert(ec_key))).verify(signed("sns_notification.json"))


def test_topic_allow_list_and_max_age() -> None:
    payload = signed("sns_notification.json")
    ours = "arn:aws:sns:us-east-1:123456789012:lunamail-ses-feedback"
    verifier(Fetcher(), accept_topic=lambda arn: arn == ours).verify(payload)
    with pytest.raises(SnsVerificationError, match="topic"):
        verifier(Fetcher(), accept_topic=lambda arn: False).verify(payload)
    verifier(Fetcher(), max_age_seconds=3600).verify(payload)
    late = SnsVerifier(Fetcher(), now=lambda: NOW + 7200, max_age_seconds=3600)
    with pytest.raises(SnsVerificationError, match="Timestamp"):
        late.verify(copy.deepcopy(payload))
