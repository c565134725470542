"""Sending domains through the application layer (the use cases both doors call), on a
real SQLite data folder, with the resolver injected through the port."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lunamail.adapters.dns.memory import MemoryResolver
from lunamail.app import campaigns as app_campaigns
from lunamail.app import domains, onboarding
from lunamail.app.base import Actor, Env
from lunamail.app.errors import describe
from lunamail.runtime.bootstrap import System, bootstrap_in
from lunamail.services.audience import api as audience
from lunamail.services.campaigns.errors import PreSendCheckFailed
from lunamail.services.delivery import domains as delivery_domains
from tests.support.domains import published

ACCOUNT = "default"
HTML = '<p>Hi</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'


def _tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


def _env(system: System) -> tuple[Env, Actor]:
    return Env(system.deps, system.bus.publish), Actor(ACCOUNT)


def _draft(system: System, env: Env, actor: Actor, from_email: str) -> str:
    lst = str(audience.create_list(system.deps, ACCOUNT, "People")["id"])
    audience.subscribe(system.deps, ACCOUNT, lst, "ann@example.net")
    return app_campaigns.create(env, actor, app_campaigns.NewCampaign(
        name="N", subject="Hello", from_email=from_email, html=HTML, lists=[lst])).id


def test_domains_add_check_ls_with_an_injected_resolver(tmp_path: Path) -> None:
    zone = MemoryResolver()
    with bootstrap_in(tmp_path / "data", resolver=zone) as system:
        env, actor = _env(system)
        added = domains.add(env, actor, "Example.COM.", ed25519=True)
        assert added.created and added.domain == "example.com" and added.state == "pending"
        by = {(r.purpose, r.name): r for r in added.records}
        rsa, ed = added.keys
        assert (rsa.algorithm, ed.algorithm) == ("rsa-sha256", "ed25519-sha256")
        assert by["dkim", f"{rsa.selector}._domainkey.example.com"].value == rsa.record
        assert rsa.record.startswith("v=DKIM1; k=rsa; p=") and ed.record.startswith("v=DKIM1; k=ed25519; p=")
        assert by["spf", "example.com"].value == "v=spf1 ip4:127.0.0.1 ~all"  # the relay of the SMTP URL
        assert by["dmarc", "_dmarc.example.com"].value.startswith("v=DMARC1; p=none;")
        assert not any(r.purpose == "mx" for r in added.records)  # bounces come back through the relay
        assert domains.add(env, actor, "example.com").created is False  # adding again changes nothing

        # nothing published yet: every record is missing, the domain stays pending
        checked = domains.check(env, actor, "example.com")
        assert checked.state == "pending" and {r.status for r in checked.records} == {"missing"}

        # all published: verified
        full = published(added)
        for name in (r.name for r in added.records):
            for value in full.txt(name):
                zone.add_txt(name, value)
        checked = domains.check(env, actor, "example.com")
        assert checked.state == "verified" and {r.status for r in checked.records} == {"ok"}
        assert checked.verified_at is not None

        # no answer from DNS says nothing: the state stays, the records are "unknown"
        zone.unavailable = True
        checked = domains.check(env, actor, "example.com")
        assert checked.state == "verified" and {r.status for r in checked.records} == {"unknown"}
        zone.unavailable = False

        # the DKIM record replaced by another key, SPF doubled: failing, naming both
        zone.remove(f"{rsa.selector}._domainkey.example.com")
        zone.add_txt(f"{rsa.selector}._domainkey.example.com", "v=DKIM1; k=rsa; p=MIIBIjANBgkq")
        zone.add_txt("example.com", "v=spf1 include:other.example ~all")
        domains.add(env, actor, "news.example.org")
        page = domains.list_domains(env, actor)
        assert [d.domain for d in page.items] == ["example.com", "news.example.org"]
        domains.check(env, actor, "example.com")
        listed = {d.domain: d for d in domains.list_domains(env, actor).items}
        assert listed["example.com"].state == "failing" and listed["news.example.org"].state == "pending"
        failing = {r.purpose: r for r in listed["example.com"].failing_records}
        assert set(failing) == {"dkim", "spf"} and failing["dkim"].status == "wrong"
        assert "two SPF records" in failing["spf"].found
        assert listed["example.com"].to_dict()["failing"] == [
            f"dkim {rsa.selector}._domainkey.example.com", "spf example.com"]

        # tenant-scoped: another account sees none of it
        other = Actor("other")
        assert domains.list_domains(env, other).items == []
        with pytest.raises(Exception) as err:
            domains.get(env, other, "example.com")
        problem = describe(err.value)
        assert problem is not None and problem.code == "not_found" and "domains add example.com" in problem.message


def test_a_bad_domain_is_refused_naming_the_field(tmp_path: Path) -> None:
    with bootstrap_in(tmp_path / "data") as system:
        env, actor = _env(system)
        for bad in ("", "news@example.com", "localhost", "exa mple.com", "x" * 300 + ".com", "a..b.com"):
            with pytest.raises(Exception) as err:
                domains.add(env, actor, bad)
            problem = describe(err.value)
            assert problem is not None and problem.code == "invalid_input", bad
            assert "domain" in problem.details["fields"]
        with pytest.raises(Exception) as err:
            domains.add(Env(system.deps, system.bus.publish), Actor(ACCOUNT, role="editor"), "example.com")
        assert describe(err.value).code == "forbidden"  # type: ignore[union-attr]


def test_the_private_key_is_sealed_and_opens_only_for_its_account_and_domain(tmp_path: Path) -> None:
    with bootstrap_in(tmp_path / "data") as system:
        env, actor = _env(system)
        domains.add(env, actor, "example.com", ed25519=True)
        item = system.store.get(delivery_domains.domains_pk(ACCOUNT), delivery_domains.domain_sk("example.com"))
        assert item is not None and "PRIVATE KEY" not in repr(item)
        signers = delivery_domains.signers(system.deps, ACCOUNT, "news.example.com")  # a subdomain: the parent's
        assert [(s.domain, s.algorithm) for s in signers] == [("example.com", "rsa-sha256"),
                                                              ("example.com", "ed25519-sha256")]
        # the same sealed item under another account does not open
        system.store.put({**item, "pk": delivery_domains.domains_pk("other"), "account": "other"})
        with pytest.raises(ValueError, match="does not open"):
            delivery_domains.signers(system.deps, "other", "example.com")


def test_the_bounce_domain_gets_spf_and_mx_when_bounces_come_back_here(tmp_path: Path) -> None:
    settings = {"bounce_domain": "bounces.example.net", "inbound_mx": "in.lunamail.example",
                "spf_include": "include:_spf.relay.example"}
    zone = MemoryResolver()
    with bootstrap_in(tmp_path / "data", resolver=zone, settings_overrides=settings) as system:
        env, actor = _env(system)
        added = domains.add(env, actor, "example.com")
        by = {r.purpose: r for r in added.records}
        assert added.return_path_domain == "bounces.example.net"
        assert (by["spf"].name, by["spf"].value) == ("bounces.example.net", "v=spf1 include:_spf.relay.example ~all")
        assert (by["mx"].type, by["mx"].name, by["mx"].value) == ("MX", "bounces.example.net", "10 in.lunamail.example")
        assert by["mx"].zone_line() == "bounces.example.net. 3600 IN MX 10 in.lunamail.example."
        zone.add_txt("bounces.example.net", "v=spf1 include:_spf.relay.example ~all")
        zone.add_mx("bounces.example.net", 10, "mx.elsewhere.example")
        checked = {r.purpose: r for r in domains.check(env, actor, "example.com").records}
        assert checked["spf"].status == "ok" and checked["mx"].status == "wrong"
        assert checked["dmarc"].status == "missing" and checked["dkim"].status == "missing"


def test_a_send_from_an_unconfigured_from_is_refused_with_the_fix(tmp_path: Path) -> None:
    with bootstrap_in(tmp_path / "data") as system:
        env, actor = _env(system)
        camp = _draft(system, env, actor, "news@moon.example.org")
        fix = "run `lunamail domains add moon.example.org`"
        with pytest.raises(PreSendCheckFailed) as err:
            app_campaigns.send(env, actor, camp)
        assert any(fix in r for r in err.value.reasons), err.value.reasons
        assert any(fix in r for r in app_campaigns.checklist(env, actor, camp))
        with pytest.raises(PreSendCheckFailed):
            app_campaigns.test(env, actor, camp, ["me@example.net"])
        with pytest.raises(PreSendCheckFailed):
            app_campaigns.schedule(env, actor, camp, _tomorrow())
        assert app_campaigns.get(env, actor, camp).status.value == "draft"

        # the parent domain covers its subdomain (relaxed alignment): the send starts,
        # and warns that the domain's records are not verified yet
        domains.add(env, actor, "example.org")
        assert app_campaigns.checklist(env, actor, camp) == []
        started = app_campaigns.send(env, actor, camp)
        assert started.campaign.status.value == "sending"
        [warning] = started.warnings
        assert "example.org is pending" in warning and "lunamail domains check example.org" in warning


def test_unsigned_sending_is_an_explicit_setting_and_warns(tmp_path: Path) -> None:
    with bootstrap_in(tmp_path / "data", settings_overrides={"unsigned_sending": True}) as system:
        env, actor = _env(system)
        camp = _draft(system, env, actor, "news@moon.example.org")
        started = app_campaigns.send(env, actor, camp)
        [warning] = started.warnings
        assert "messages go out unsigned" in warning and "lunamail domains add moon.example.org" in warning


def test_a_subdomain_passes_dmarc_with_its_parents_policy(tmp_path: Path) -> None:
    zone = MemoryResolver({"_dmarc.example.com": ["v=DMARC1; p=quarantine"]})
    with bootstrap_in(tmp_path / "data", resolver=zone) as system:
        env, actor = _env(system)
        domains.add(env, actor, "news.example.com")
        checked = {r.purpose: r for r in domains.check(env, actor, "news.example.com").records}
        assert checked["dmarc"].name == "_dmarc.news.example.com" and checked["dmarc"].status == "ok"


def test_the_first_run_checklist_counts_the_accounts_sending_domain(tmp_path: Path) -> None:
    with bootstrap_in(tmp_path / "data") as system:
        env, actor = _env(system)
        _draft(system, env, actor, "news@mail.example.com")
        [step] = [s for s in onboarding.first_run(env, actor).steps if s.key == "domain"]
        assert not step.done and "lunamail domains add" in step.detail
        domains.add(env, actor, "example.com")
        [step] = [s for s in onboarding.first_run(env, actor).steps if s.key == "domain"]
        assert step.done and step.detail == "news@mail.example.com is signed by the key of example.com."
