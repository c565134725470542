"""``POST /feedback/ses/{account}`` with SNS payloads signed in the test by a locally made
certificate (the injected fetch returns it: it stands in for AWS's signing certificate)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lunamail.adapters.blobs.files import FileBlobs
from lunamail.adapters.itemstore.memory import MemoryItemStore
from lunamail.config import Settings
from lunamail.domain.feedback import Bounced, Complained, Delivered, DeliveryDelayed
from lunamail.domain.messages import Later, Message
from lunamail.domain.tracking import Clicked, Opened
from lunamail.entrypoints.http import routes_feedback
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.ports.secrets import DerivedSecrets
from lunamail.services.feedback.sns import SnsVerifier

EVENTS = Path(__file__).resolve().parents[1] / "events"
NOW = dt.datetime(2024, 5, 14, 9, 13, tzinfo=dt.UTC).timestamp()
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
TOPIC = "arn:aws:sns:us-east-1:123456789012:lunamail-ses-feedback"
URL = "/feedback/ses/acme"


def _pem() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.fromtimestamp(NOW, dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .sign(KEY, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


PEM = _pem()


def sign(payload: dict[str, Any]) -> dict[str, Any]:
    """Sign the documented string-to-sign (written out here, independently of the module)."""
    if payload["Type"] == "Notification":
        keys = ["Message", "MessageId", *(["Subject"] if "Subject" in payload else []),
                "Timestamp", "TopicArn", "Type"]  # fmt: skip
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{k}\n{payload[k]}\n" for k in keys).encode()
    algo = hashes.SHA1() if payload["SignatureVersion"] == "1" else hashes.SHA256()
    out = dict(payload)
    out["Signature"] = base64.b64encode(KEY.sign(text, padding.PKCS1v15(), algo)).decode()
    return out


def envelope(ses_fixture: str | None = None, message_id: str = "m-1") -> dict[str, Any]:
    """The SNS notification fixture, optionally carrying another SES fixture as Message."""
    doc: dict[str, Any] = orjson.loads((EVENTS / "sns_notification.json").read_bytes())
    if ses_fixture is not None:
        doc["Message"] = (EVENTS / ses_fixture).read_text()
    doc["MessageId"] = message_id
    return doc


@dataclass
class Ses:
    client: TestClient
    deps: Deps
    published: list[Message] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    cert_fetches: list[str] = field(default_factory=list)
    fail_publish: bool = False

    def post(self, doc: dict[str, Any] | bytes, url: str = URL) -> Any:
        body = doc if isinstance(doc, bytes) else orjson.dumps(doc)
        return self.client.post(
            url, content=body, headers={"content-type": "text/plain; charset=UTF-8"}
        )

    def stored(self) -> list[str]:
        return sorted(self.deps.blobs.list("inbound-ses/"))


@pytest.fixture
def ses(tmp_path: Path) -> Iterator[Ses]:
    clock = FakeClock(NOW)
    deps = Deps(
        settings=Settings(data_dir=tmp_path),
        store=MemoryItemStore(clock=clock),
        blobs=FileBlobs(
            tmp_path / "blobs", base_url="http://x", signing_key=b"k" * 32, clock=clock
        ),
        clock=clock,
        secrets=DerivedSecrets(b"m" * 32),
    )
    handle = Ses(client=None, deps=deps)  # type: ignore[arg-type]

    def publish(messages: Sequence[Message | Later]) -> None:
        if handle.fail_publish:
            raise RuntimeError("queue down")
        handle.published.extend(m.message if isinstance(m, Later) else m for m in messages)

    def fetch_cert(url: str) -> bytes:
        handle.cert_fetches.append(url)
        return PEM

    def confirm(url: str) -> bytes:
        handle.fetched.append(url)
        return b"<ConfirmSubscriptionResponse/>"

    verifier = SnsVerifier(fetch_cert, now=lambda: NOW, accept_topic=lambda t: t == TOPIC)
    app = FastAPI()
    app.include_router(
        routes_feedback.router_factory(publish, deps, verifier, confirm_fetch=confirm)
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        handle.client = client
        yield handle


def test_valid_bounce_notification_is_stored_and_published(ses: Ses) -> None:
    res = ses.post(sign(envelope()))
    assert res.status_code == 200, res.text
    assert res.json() == {"status": "accepted", "events": 1}
    [ev] = ses.published
    assert isinstance(ev, Bounced)
    assert (ev.account, ev.campaign, ev.email, ev.bounce_type, ev.status, ev.source) == (
        "acme", "spring-sale", "jdoe@example.net", "hard", "5.1.1", "ses"
    )  # fmt: skip
    assert ev.id == "ses:m-1:bounce:jdoe@example.net"
    [key] = ses.stored()
    assert key == "inbound-ses/acme/2024/05/14/m-1.json"
    assert orjson.loads(ses.deps.blobs.get(key))["MessageId"] == "m-1"  # kept as received


def test_a_retried_notification_yields_the_same_event_ids(ses: Ses) -> None:
    doc = sign(envelope())
    ses.post(doc)
    ses.post(doc)
    assert len(ses.published) == 2 and ses.published[0] == ses.published[1]
    assert len(ses.stored()) == 1


@pytest.mark.parametrize(
    ("fixture", "cls", "email"),
    [
        ("ses_complaint.json", Complained, "casey@example.com"),
        ("ses_delivery.json", Delivered, "sam@example.com"),
        ("ses_delivery_delay.json", DeliveryDelayed, "robin@example.org"),
        ("ses_open.json", Opened, "sam@example.com"),
        ("ses_click.json", Clicked, "sam@example.com"),
    ],
)
def test_each_ses_event_type_is_mapped(
    ses: Ses, fixture: str, cls: type[Message], email: str
) -> None:
    assert ses.post(sign(envelope(fixture))).status_code == 200
    assert [type(e) for e in ses.published] == [cls]
    fields = ses.published[0].to_dict()["body"]
    assert (fields["email"], fields["campaign"]) == (email, "spring-sale")


def test_bounce_with_two_recipients_yields_two_events(ses: Ses) -> None:
    assert ses.post(sign(envelope("ses_bounce_permanent.json"))).json()["events"] == 2
    assert [e.to_dict()["body"]["email"] for e in ses.published] == [
        "jdoe@example.net",
        "pat.kim@example.org",
    ]


def test_reject_is_stored_but_not_an_event(ses: Ses) -> None:
    assert ses.post(sign(envelope("ses_reject.json"))).json() == {"status": "accepted", "events": 0}
    assert ses.published == [] and len(ses.stored()) == 1


def test_tampered_notification_is_refused(ses: Ses, caplog: pytest.LogCaptureFixture) -> None:
    # A uvicorn test earlier in the same process may have disabled existing loggers.
    logging.getLogger("lunamail.app.feedback").disabled = False
    caplog.set_level(logging.WARNING, logger="lunamail.app.feedback")
    doc = sign(envelope())
    doc["Message"] = doc["Message"].replace("jdoe@example.net", "victim@example.net")
    res = ses.post(doc)
    assert res.status_code == 403
    assert res.json()["error"]["code"] == "forbidden"
    assert ses.published == [] and ses.stored() == []
    assert "signature does not match" in caplog.text


def test_unsigned_notification_is_refused(ses: Ses) -> None:
    assert ses.post(envelope()).status_code == 403  # Signature ""
    assert ses.published == [] and ses.stored() == []


def test_another_topic_is_refused_before_any_fetch(ses: Ses) -> None:
    doc = envelope()
    doc["TopicArn"] = "arn:aws:sns:us-east-1:999999999999:someone-else"
    assert ses.post(sign(doc)).status_code == 403
    assert ses.cert_fetches == [] and ses.published == []


def test_notification_naming_another_account_is_not_published(ses: Ses) -> None:
    res = ses.post(sign(envelope()), url="/feedback/ses/other")
    assert res.status_code == 200 and res.json()["events"] == 0
    assert ses.published == []
    assert ses.stored() == ["inbound-ses/other/2024/05/14/m-1.json"]


def test_publish_failure_is_a_500_and_the_notification_is_kept(ses: Ses) -> None:
    ses.fail_publish = True
    assert ses.post(sign(envelope())).status_code == 500
    assert len(ses.stored()) == 1


def test_subscription_confirmation_fetches_the_subscribe_url(ses: Ses) -> None:
    doc = orjson.loads((EVENTS / "sns_subscription_confirmation.json").read_bytes())
    res = ses.post(sign(doc))
    assert res.status_code == 200 and res.json() == {"status": "confirmed"}
    assert ses.fetched == [doc["SubscribeURL"]]
    assert ses.published == []


def test_subscribe_url_off_the_sns_hosts_is_never_fetched(ses: Ses) -> None:
    doc = orjson.loads((EVENTS / "sns_subscription_confirmation.json").read_bytes())
    for url in ("https://evil.example.com/?Action=ConfirmSubscription",
                "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
                "https://sns.us-east-1.amazonaws.com.evil.example/x"):  # fmt: skip
        bad = copy.deepcopy(doc)
        bad["SubscribeURL"] = url
        assert ses.post(sign(bad)).status_code == 400
    assert ses.fetched == []


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"not json", 400), (b"[1, 2]", 400), (b"x" * (routes_feedback.MAX_BODY_BYTES + 1), 413)],
)
def test_malformed_bodies(ses: Ses, body: bytes, status: int) -> None:
    assert ses.post(body).status_code == status
    assert ses.published == [] and ses.stored() == []


def test_bad_account_in_the_path_is_a_404(ses: Ses) -> None:
    assert ses.post(sign(envelope()), url="/feedback/ses/BAD..acct").status_code == 404


def test_default_verifier_accepts_no_topic_until_configured() -> None:
    refused = routes_feedback.default_verifier(Settings(data_dir=Path("unused")))
    with pytest.raises(Exception, match="not accepted"):
        refused.verify(sign(envelope()))  # refused before any certificate fetch
    settings = Settings(
        data_dir=Path("unused"), sns_topic_arns=("arn:aws:sns:*:123456789012:lunamail-*",)
    )
    allowed = routes_feedback.default_verifier(
        settings, fetch_cert=lambda url: PEM, now=lambda: NOW
    )
    allowed.verify(sign(envelope()))
