"""The OpenAPI document of a running ``lunamail serve`` is a valid OpenAPI 3 document, and
the server keeps its promises: schemathesis sends generated requests (valid and invalid,
with a real API key) to every operation and checks every answer against the document.

Bounded: a few examples per operation, so the whole module stays well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lunamail.adapters.dns.memory import MemoryResolver
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts
from tests.support.live_server import live_serve

MAX_EXAMPLES = 15


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data: Path = tmp_path_factory.mktemp("openapi-live") / "data"
    system = bootstrap_in(data, resolver=MemoryResolver())  # a checked domain asks this zone, not the network
    accounts.create_account(system.deps, "Fuzz", account_id="fuzz")
    key = accounts.create_api_key(system.deps, "fuzz", "schemathesis").secret
    # A list and a draft, so generated requests also reach existing resources by name.
    auth = {"Authorization": f"Bearer {key}"}
    try:
        with live_serve(system, workers=False) as base:
            with httpx.Client(base_url=base, headers=auth, timeout=10.0) as http:
                http.post("/v1/lists", json={"name": "a"}).raise_for_status()
                http.post("/v1/campaigns", json={"name": "a", "id": "a", "lists": ["a"]}).raise_for_status()
            yield base, key
    finally:
        system.close()


@pytest.fixture(scope="module")
def document(served: tuple[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(f"{served[0]}/openapi.json", timeout=10.0).json()
    return doc


@pytest.fixture(scope="module")
def api_schema(served: tuple[str, str], document: dict[str, Any]) -> Any:
    schema = schemathesis.openapi.from_dict(document)
    schema.config.base_url = served[0]
    # the stream is an endless body by design; a generated prefix could revoke the fuzzer's key
    return schema.exclude(path_regex=r"/report/stream$").exclude(method="DELETE", path="/v1/keys/{prefix}")


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises on the first problem
    assert document["openapi"].startswith("3.")
    assert len(document["paths"]) >= 20


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_the_server_keeps_the_documents_promises(api_schema: Any, served: tuple[str, str]) -> None:
    base, key = served
    headers = {"Authorization": f"Bearer {key}"}
    failures: dict[str, str] = {}
    tested = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def run(case: Any) -> None:
            case.call_and_validate(base_url=base, headers=headers, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collected: one report naming every failing operation
            failures[operation.label] = str(exc)[:2000]
        tested += 1
    assert tested >= 30
    assert failures == {}
