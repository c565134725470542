"""``/v1/domains``: the HTTP twin of ``lunamail domains add/check/ls/show``, tenant-scoped,
with the resolver injected through the port."""

from __future__ import annotations

from lunamail.adapters.dns.memory import MemoryResolver
from tests.integration.test_http_fixtures import Api, api, assert_error

__all__ = ["api"]


def test_add_list_show_and_check_a_domain_over_http(api: Api) -> None:
    zone = MemoryResolver()
    api.system.deps.resolver = zone
    resp = api.client.post("/v1/domains", json={"domain": "Shop.Example.NET", "ed25519": True}, headers=api.a)
    assert resp.status_code == 201, resp.text
    added = resp.json()
    assert added["domain"] == "shop.example.net" and added["state"] == "pending" and added["created"] is True
    assert [k["algorithm"] for k in added["keys"]] == ["rsa-sha256", "ed25519-sha256"]
    assert {r["purpose"] for r in added["records"]} == {"dkim", "spf", "dmarc"}
    assert all(r["zone_line"].startswith(r["name"] + ". 3600 IN ") for r in added["records"])
    again = api.client.post("/v1/domains", json={"domain": "shop.example.net"}, headers=api.a).json()
    assert again["created"] is False and again["keys"] == added["keys"]

    for r in added["records"]:
        zone.add_txt(r["name"], r["value"])
    checked = api.client.post("/v1/domains/shop.example.net/check", headers=api.a)
    assert checked.status_code == 200 and checked.json()["state"] == "verified"
    assert checked.json()["verified_at"].endswith("Z") or "+00:00" in checked.json()["verified_at"]
    listed = api.client.get("/v1/domains", headers=api.a).json()
    # the fixture's domains (never checked) and this one
    assert [(d["domain"], d["state"]) for d in listed["items"]] == [
        ("example.com", "pending"), ("example.org", "pending"), ("shop.example.net", "verified")]
    assert listed["next_cursor"] is None
    first = api.client.get("/v1/domains?limit=2", headers=api.a).json()
    rest = api.client.get(f"/v1/domains?limit=2&cursor={first['next_cursor']}", headers=api.a).json()
    assert [d["domain"] for d in first["items"] + rest["items"]] == ["example.com", "example.org", "shop.example.net"]
    assert api.client.get("/v1/domains/shop.example.net", headers=api.a).json()["state"] == "verified"

    # another account sees nothing of it, and may not check it
    assert "shop.example.net" not in [d["domain"] for d in api.client.get("/v1/domains", headers=api.b).json()["items"]]
    assert_error(api.client.get("/v1/domains/shop.example.net", headers=api.b), 404, "not_found")
    assert_error(api.client.post("/v1/domains/shop.example.net/check", headers=api.b), 404, "not_found")


def test_bad_domains_are_refused_with_the_field(api: Api) -> None:
    for bad in ("news@example.com", "localhost", "-x-.com", "a" * 64 + ".com"):
        err = assert_error(api.client.post("/v1/domains", json={"domain": bad}, headers=api.a), 422, "invalid_input")
        assert "domain" in err["details"]["fields"], bad
    assert_error(api.client.post("/v1/domains", json={"domain": "example.com", "x": 1}, headers=api.a),
                 422, "invalid_input")
