"""Sending domains end to end, over real SMTP on loopback and a real SQLite data folder:
the DKIM record ``lunamail domains add`` prints verifies the mail with dkimpy, and a
relay's ``550 5.1.1`` at send time suppresses that address (a 5.7.x refusal does not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dkim
import orjson
import pytest
from typer.testing import CliRunner

from lunamail.app import campaigns as app_campaigns
from lunamail.app.base import Actor, Env
from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.entrypoints.cli.context import get_app
from lunamail.entrypoints.cli.main import app
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.audience import api as audience
from lunamail.services.reports import api as reports
from tests.support.cli_fixtures import cli, sink
from tests.support.domains import SENDER_DOMAIN, add_sending_domain

ACCOUNT = "default"
__all__ = ["cli", "sink"]  # the fixtures

HTML = '<p>Hello {{ subscriber.name }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'


def _send(system: Any, from_email: str, emails: list[str]) -> str:
    """A campaign From ``from_email`` to ``emails``, sent through the application layer
    (the pre-send check every door runs), run until sent."""
    deps = system.deps
    env, actor = Env(deps, system.bus.publish), Actor(ACCOUNT)
    lst = str(audience.create_list(deps, ACCOUNT, "People")["id"])
    for e in emails:
        audience.subscribe(deps, ACCOUNT, lst, e, name=e.split("@")[0].title())
    camp = app_campaigns.create(env, actor, app_campaigns.NewCampaign(
        name="N", subject="Hello {{ subscriber.name }}", from_email=from_email, html=HTML, lists=[lst])).id
    app_campaigns.send(env, actor, camp)
    assert system.run_until(lambda: reports.campaign_report(deps, ACCOUNT, camp)["status"] == "sent", timeout=90)
    return camp


def test_a_message_signed_with_the_domains_key_verifies_with_dkimpy_against_the_published_record(
    cli: CliRunner, sink: CaptureServer,
) -> None:
    # the fixture added the domain (RSA); asked again with --ed25519 it gets its second key
    res = cli.invoke(app, ["domains", "add", SENDER_DOMAIN, "--ed25519", "--json"])
    assert res.exit_code == 0, res.output
    printed = orjson.loads(res.stdout)
    zone = {f"{r['name']}.".encode(): r["value"].encode() for r in printed["records"] if r["type"] == "TXT"}

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return zone.get(name)

    _send(get_app(), f"news@{SENDER_DOMAIN}", ["ann@example.net"])
    assert sink.wait_for(1)
    data = sink.messages[0][2]
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.count(b"DKIM-Signature:") == 2
    d = dkim.DKIM(data)
    assert d.verify(idx=0, dnsfunc=dnsfunc) and d.verify(idx=1, dnsfunc=dnsfunc)  # RSA-2048 and ed25519
    for sig in (0, 1):
        assert d.verify(idx=sig, dnsfunc=lambda name, timeout=5: None) is False  # no record, no pass
    selectors = {k["selector"] for k in printed["keys"]}
    assert {f"s={s};".encode() in head.replace(b"\r\n\t", b"") for s in selectors} == {True}


def test_domains_cli_add_check_ls_against_a_local_dns_server(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lunamail.adapters.dns.memory import MemoryResolver
    from tests.support.dns_server import ZoneServer

    zone = MemoryResolver()
    with ZoneServer(zone) as server:
        monkeypatch.setenv("LUNAMAIL_DNS_SERVERS", server.address)
        added = orjson.loads(cli.invoke(app, ["domains", "add", "example.com", "--json"]).stdout)
        res = cli.invoke(app, ["domains", "check", "example.com"])
        assert res.exit_code == 1 and "example.com: pending" in res.stdout
        res = cli.invoke(app, ["domains", "check", "example.com", "--json"])
        assert {r["status"] for r in orjson.loads(res.stdout)["records"]} == {"missing"}
        for r in added["records"]:
            zone.add_txt(r["name"], r["value"])
        res = cli.invoke(app, ["domains", "check", "example.com", "--json"])
        assert res.exit_code == 0, res.output
        assert orjson.loads(res.stdout)["state"] == "verified" and server.queries >= 6
        zone.remove("_dmarc.example.com")
        assert cli.invoke(app, ["domains", "check", "example.com"]).exit_code == 1
        res = cli.invoke(app, ["domains", "ls"])
        assert res.exit_code == 0 and "failing" in res.stdout and "dmarc" in res.stdout
        listed = orjson.loads(cli.invoke(app, ["domains", "ls", "--json"]).stdout)
        assert [(d["domain"], d["state"], d["failing"]) for d in listed["items"]] == [
            ("example.com", "failing", ["dmarc _dmarc.example.com"]),
            (SENDER_DOMAIN, "pending", [])]  # the fixture's, never checked
        res = cli.invoke(app, ["domains", "add", "example.com"])  # the records, again, to paste
        assert res.exit_code == 0 and "Already there" in res.stdout and "._domainkey.example.com." in res.stdout
        res = cli.invoke(app, ["domains", "show", "nothing.example", "--json"])
        assert res.exit_code == 1 and orjson.loads(res.stdout)["error"]["code"] == "not_found"


def test_a_send_time_550_5_1_1_is_a_hard_bounce_that_suppresses_and_a_5_7_1_is_not(tmp_path: Path) -> None:
    gone, policy, fine = "gone@example.net", "policy@example.net", "fine@example.net"
    fail = {gone: (550, "5.1.1 <gone@example.net>: Recipient address rejected: User unknown in virtual table"),
            policy: (550, "5.7.1 Message rejected as spam by Content Filtering")}
    with CaptureServer("127.0.0.1", 0, fail=fail) as sink, bootstrap_in(
        tmp_path / "data", settings_overrides={"smtp_url": f"smtp://127.0.0.1:{sink.port}"},
    ) as system:
        add_sending_domain(system)
        camp = _send(system, f"news@{SENDER_DOMAIN}", [gone, policy, fine])
        assert system.runtime().run_until_idle(timeout=60)
        deps = system.deps
        assert audience.is_suppressed(deps, ACCOUNT, gone)
        [lst] = audience.list_lists(deps, ACCOUNT)
        assert audience.get_subscriber(deps, ACCOUNT, str(lst["id"]), gone)["status"] == "bounced"
        for kept in (policy, fine):
            assert not audience.is_suppressed(deps, ACCOUNT, kept), kept
            assert audience.get_subscriber(deps, ACCOUNT, str(lst["id"]), kept)["status"] == "subscribed"
        rep = reports.campaign_report(deps, ACCOUNT, camp)
        assert (rep["sent"], rep["failed"], rep["bounced"]["hard"]) == (1, 2, 1)
        assert sink.wait_for(1) and [m[1] for m in sink.messages] == [[fine]]
