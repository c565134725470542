"""A real OpenID Connect provider for tests: ``oidc_provider.mjs`` beside this file (npm's
``oidc-provider``) run by Node on a free port of 127.0.0.1, stopped by the test that
started it."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.motoserver import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
PACKAGE = ROOT / "node_modules" / "oidc-provider"


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    client_secret: str

    def tamper(self, what: str) -> None:
        """Make the token endpoint hand out ID tokens for another audience (``aud``) or from
        another issuer (``iss``), signed with the provider's key; ``""`` stops it."""
        httpx.post(self.issuer + "/test/tamper", content=what, timeout=10.0).raise_for_status()


def _wait(provider: Provider, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the provider answers its discovery document (bounded by attempts, not timed);
    a provider that exits or never answers fails the test with its output."""
    with httpx.Client(timeout=5.0) as probe:
        for _ in range(3000):
            if proc.poll() is not None:
                pytest.fail(f"the OpenID provider exited ({proc.returncode}): {log.read_text(errors='replace')}")
            try:
                if probe.get(provider.issuer + "/.well-known/openid-configuration").status_code == 200:
                    return
            except httpx.TransportError:
                threading.Event().wait(0.02)
    pytest.fail(f"the OpenID provider did not come up: {log.read_text(errors='replace')}")


@contextmanager
def oidc_provider(redirect_uri: str, tmp: Path) -> Iterator[Provider]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node is needed for the OpenID Connect provider (Debian's nodejs package)")
    if not PACKAGE.is_dir():
        pytest.fail("npm's oidc-provider is missing: run `make assets` (npm ci)")
    port = free_port()
    provider = Provider(f"http://127.0.0.1:{port}", "lunamail-console", "a-test-client-secret-0123456789")
    log = tmp / "oidc-provider.log"
    env = {**os.environ, "OIDC_PORT": str(port), "OIDC_CLIENT_ID": provider.client_id,
           "OIDC_CLIENT_SECRET": provider.client_secret, "OIDC_REDIRECT_URI": redirect_uri}
    with log.open("wb") as out:
        proc = subprocess.Popen([node, str(SCRIPT)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        _wait(provider, proc, log)
        yield provider
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
