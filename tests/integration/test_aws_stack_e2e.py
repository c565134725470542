"""The whole generated stack on moto, and one campaign through it.

Every nested stack of ``deploy/template.yaml`` is SAM-transformed and created by moto's
CloudFormation (the few resource types moto cannot make are made through their own APIs:
``aws_stack.DIRECT``, listed in ``deploy/README.md``).  Then the campaign runs only
through the deployed functions, as Lambda would run them: the event source mappings read
back from moto choose the queue, batch size and function; each function's handler runs
in its own environment as deployed.  The doors are real-shaped events: API Gateway HTTP
API (payload 2.0) requests to the HTTP function, S3's notification of a presigned upload,
EventBridge rule deliveries, SES notifications through SNS into SQS.

Upload a CSV to the presigned URL -> the S3 event starts the import -> create and send a
campaign through the HTTP function -> SES (moto) receives every message once, paced at
the stack's ``SendRate`` of 5/s -> a bounce and a complaint arrive through SNS -> a click
through the HTTP function -> the report read through the HTTP function is exact, and no
message is left in any queue or dead-letter queue.
"""

from __future__ import annotations

import copy
import email
import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from email.message import Message as EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lunamail.entrypoints.aws.system import build_system
from lunamail.services.accounts import api as accounts
from tests.support.events import http_body, http_event, load_event
from tests.support.fixtures import moto_endpoint

from .aws_stack import (
    ACCOUNT,
    DEPLOY,
    DIRECT,
    Container,
    Deployment,
    Lambda,
    deploy,
    environment,
    json_templates,
)

__all__ = ["moto_endpoint"]

RECIPIENTS = [f"reader{i}@example.org" for i in range(12)]
CSV = ("email,name\n" + "".join(f"{e},Reader {i}\n" for i, e in enumerate(RECIPIENTS))).encode()
HTML = (
    "<h1>Hello {{ subscriber.name }}</h1>"
    '<p><a href="https://shop.example.com/spring">The spring sale</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)


@pytest.fixture
def stack(moto_endpoint: str, tmp_path: Path) -> Iterator[tuple[Deployment, Lambda]]:
    prefix = f"lm{uuid.uuid4().hex[:8]}-"
    with json_templates():
        d = deploy(moto_endpoint, {"QueuePrefix": prefix, "SendRate": "5", "SendConcurrency": "2"})
    # What differs from AWS: the endpoint, and a data folder of the test's own.
    lam = Lambda(d, {"LUNAMAIL_AWS_ENDPOINT_URL": moto_endpoint,
                     "LUNAMAIL_DATA_DIR": str(tmp_path / "lambda")})
    yield d, lam
    lam.close()
    d.forget_functions()


class Api:
    """Requests to the deployed HTTP function, as API Gateway hands them over."""

    def __init__(self, fn: Container, domain: str, key: str) -> None:
        self.fn, self.domain, self.key = fn, domain, key

    def call(self, method: str, target: str, body: Any = None, *, auth: bool = True,
             headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, Any]]:
        h = {"authorization": f"Bearer {self.key}"} if auth else {}
        raw = None
        if body is not None:
            raw = json.dumps(body).encode()
            h["content-type"] = "application/json"
        resp = self.fn.invoke(http_event(method, target, headers=h | (headers or {}), body=raw,
                                         domain=self.domain))
        data = http_body(resp)
        is_json = resp.get("headers", {}).get("content-type", "").startswith("application/json")
        return int(resp["statusCode"]), json.loads(data) if is_json and data else data, resp


def _sent(ses_before: int) -> list[Any]:
    """The raw messages moto's SES accepted since ``ses_before`` (it runs in this process)."""
    from moto.ses.models import ses_backends

    return list(ses_backends[ACCOUNT]["us-east-1"].sent_messages[ses_before:])


def _rcpt(sent: Any) -> str:
    """The one recipient of a sent message (moto lists the To header's and the envelope's)."""
    [rcpt] = {parseaddr(d)[1] for d in sent.destinations}
    return rcpt


def _html(raw: bytes) -> str:
    msg: EmailMessage = email.message_from_bytes(raw)
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no HTML part")


def _notification(kind: str, sent: Any, campaign: str, account: str) -> dict[str, Any]:
    """An SES event notification for one sent message, from the real-shaped fixture."""
    doc = copy.deepcopy(load_event("ses_bounce_permanent.json" if kind == "bounce" else "ses_complaint.json"))
    rcpt = _rcpt(sent)
    mail = doc["mail"]
    mail.update(messageId=sent.id, source=sent.source, destination=[rcpt],
                tags={"lm_account": [account], "lm_campaign": [campaign]})
    mail["headers"] = [h for h in mail.get("headers", []) if not h["name"].startswith("X-Lunamail")]
    if kind == "bounce":
        doc["bounce"]["bouncedRecipients"] = [{"emailAddress": rcpt, "action": "failed", "status": "5.1.1",
                                               "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]
    else:
        doc["complaint"]["complainedRecipients"] = [{"emailAddress": rcpt}]
    return doc


def test_a_campaign_runs_through_the_deployed_stack(stack: tuple[Deployment, Lambda]) -> None:
    d, lam = stack
    # Moto made what its CloudFormation has models for; the rest was made directly.
    assert set(d.direct) <= set(DIRECT)
    readme = (DEPLOY / "README.md").read_text("utf-8")
    assert all(f"`{kind}`" in readme for kind in DIRECT)
    assert len(d.resources("AWS::Lambda::Function")) == len(lam.mappings) + 1  # + the HTTP function
    core = d.outputs["CoreStack"]
    ses = d.client("ses")
    ses.verify_domain_identity(Domain="example.com")  # deploy step 2: the sending identity

    http = lam.container(lam.function_of("HttpFunction"))
    domain = f"{d.outputs['HttpStack']['HttpApi']}.execute-api.us-east-1.amazonaws.com"
    with environment(http.env), build_system() as admin:  # deploy step 8: lunamail init
        acct = accounts.create_account(admin.deps, "Acme")
        key = accounts.create_api_key(admin.deps, acct.id, "e2e").secret
    api = Api(http, domain, key)

    # An audience: a list, and a CSV uploaded to the presigned URL; S3 starts the import.
    status, lst, _ = api.call("POST", "/v1/lists", {"name": "Newsletter"})
    assert status == 201, lst
    status, declared, _ = api.call("POST", "/v1/imports", {"list": lst["id"]})
    assert status == 201, declared
    put = urllib.request.Request(declared["upload"]["url"], data=CSV, method="PUT",
                                 headers={"Content-Type": "text/csv"})
    with urllib.request.urlopen(put, timeout=30) as resp:
        assert resp.status == 200
    lam.drain()
    status, job, _ = api.call("GET", f"/v1/imports/{declared['id']}")
    assert (status, job["status"], job["imported"], job["rejected"]) == (200, "completed", 12, 0), job

    # Its sending domain (the DKIM key sealed under the stack's master key), then a campaign
    # From it, sent through the HTTP function; the functions do the rest.
    status, domain_doc, _ = api.call("POST", "/v1/domains", {"domain": "example.com"})
    assert status == 201 and domain_doc["state"] == "pending", domain_doc
    before = len(_sent(0))
    status, camp, _ = api.call("POST", "/v1/campaigns", {
        "name": "Spring", "subject": "Hello {{ subscriber.name }}", "from_name": "Acme",
        "from_email": "news@example.com", "reply_to": "", "html": HTML, "lists": [lst["id"]],
    })
    assert status == 201, camp
    status, started, _ = api.call("POST", f"/v1/campaigns/{camp['id']}/send")
    assert status == 202, started
    lam.drain()
    sent = _sent(before)
    assert sorted(_rcpt(m) for m in sent) == sorted(RECIPIENTS)  # each once
    senders = [c for c in lam.containers.values() if c.env.get("LUNAMAIL_LAMBDA_QUEUE") == "delivery.send_batch"]
    assert senders and all(c.env["LUNAMAIL_SEND_RATE"] == "5" for c in senders)
    assert all(c.env["LUNAMAIL_SES_CONFIGURATION_SET"] == core["ConfigurationSet"] for c in senders)

    # SES reports a bounce and a complaint through the configuration set's SNS topic.
    by_rcpt = {_rcpt(m): m for m in sent}
    sns = d.client("sns")
    for kind, rcpt in (("bounce", RECIPIENTS[0]), ("complaint", RECIPIENTS[1])):
        sns.publish(TopicArn=core["SesEventsTopic"], Subject="Amazon SES Email Event Notification",
                    Message=json.dumps(_notification(kind, by_rcpt[rcpt], camp["id"], acct.id)))
    lam.drain()

    # A reader clicks the link of the message SES received.
    html = _html(by_rcpt[RECIPIENTS[2]].raw_data.encode() if isinstance(
        by_rcpt[RECIPIENTS[2]].raw_data, str) else by_rcpt[RECIPIENTS[2]].raw_data)
    links = [u for u in re.findall(r'href="([^"]+)"', html) if f"//{domain}/c/" in u]
    assert links, html
    target = urlsplit(links[0])
    status, _, resp = api.call("GET", f"{target.path}?{target.query}" if target.query else target.path,
                               auth=False, headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64) "
                                                    "AppleWebKit/537.36 Chrome/124.0 Safari/537.36"})
    assert status in (302, 303, 307) and resp["headers"]["location"] == "https://shop.example.com/spring"
    lam.drain()

    status, report, _ = api.call("GET", f"/v1/campaigns/{camp['id']}/report")
    assert status == 200, report
    assert (report["planned"], report["sent"], report["failed"], report["deferred"]) == (12, 12, 0, 0), report
    assert (report["status"], report["campaign_status"]) == ("sent", "sent"), report
    assert report["bounced"]["hard"] == 1 and report["complained"] == 1, report
    # Counted once: as a person's, or (clicked within 10 s of the send, as scanners do) apart
    # as a machine's; which one depends on how fast the box got here.
    assert report["clicked"]["unique"] + report["clicked"]["machine_unique"] == 1, report
    assert lam.waiting() == {}  # nothing left behind, nothing dead-lettered
