"""A person unsubscribes in a real browser: uvicorn on a free port of 127.0.0.1, Chromium
driven by Playwright, the confirmation page, the "all lists" choice, the done page, and the
event that reached the bus.

Needs Chromium at ``/usr/bin/chromium`` (the Debian package) and the ``playwright`` Python
package; without them the test fails and says so, it never skips.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import uvicorn

from lunamail.adapters.itemstore.sqlite import SqliteItemStore
from lunamail.config import Settings
from lunamail.domain.campaigns import CampaignSendStarted
from lunamail.domain.messages import Later, Message
from lunamail.domain.tracking import Unsubscribed
from lunamail.entrypoints.http.routes_tracking import create_tracking_app
from lunamail.lib import tokens
from lunamail.ports.clock import SystemClock
from lunamail.ports.deps import Deps
from lunamail.ports.secrets import DerivedSecrets
from lunamail.services.tracking.handlers import on_campaign_send_started
from tests.support.serving import wait_until_serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
EMAIL = "ann@example.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    base: str
    deps: Deps
    published: list[Message]


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[Served]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    store = SqliteItemStore(tmp_path / "lunamail.db")
    deps = Deps(settings=Settings(base_url=base), store=store, blobs=cast(Any, None),
                clock=SystemClock(), secrets=DerivedSecrets(b"e" * 32))
    published: list[Message] = []
    lock = threading.Lock()

    def publish(messages: Sequence[Message | Later]) -> None:
        with lock:
            published.extend(m.message if isinstance(m, Later) else m for m in messages)

    server = uvicorn.Server(uvicorn.Config(create_tracking_app(deps, publish), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="tracking-e2e", daemon=True)
    thread.start()
    try:
        wait_until_serving(base)
        yield Served(base, deps, published)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the tracking server did not stop"
        store.close()


def _browser_or_fail() -> Any:
    """Playwright's sync API, or a failure that says what to install."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: install the Debian package 'chromium'")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the 'playwright' Python package is not installed (pip install playwright)")
    return sync_playwright


def test_a_person_unsubscribes_from_all_lists_in_a_browser(served: Served, tmp_path: Path) -> None:
    sync_playwright = _browser_or_fail()
    deps = served.deps
    on_campaign_send_started(CampaignSendStarted(
        account="acct1", campaign="camp1", lists=("news",), started_at=1.0,
        content={"subject": "Hi", "html": "<p>Hi</p>", "text": None,
                 "from_name": "Moon Shop", "from_email": "news@shop.example.org"},
    ), deps)
    token = tokens.make_token(deps.secrets.key("acct1", tokens.UNSUBSCRIBE), "acct1",
                              "u", "camp1", "news", EMAIL)
    url = f"{served.base}/u/{token}"

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 800, "height": 600})
            page.goto(url)
            assert page.title() == "Unsubscribe"
            text = page.inner_text("main")
            assert EMAIL in text and "Moon Shop" in text
            assert "Nothing changes until you press the button" in text
            assert served.published == []  # looking changes nothing
            page.screenshot(path=str(tmp_path / "unsubscribe-confirm.png"), full_page=True)

            assert page.get_by_label("This list only").is_checked()
            page.get_by_label("All lists of Moon Shop").check()
            page.get_by_role("button", name="Unsubscribe").click()
            page.get_by_role("heading", name="You are unsubscribed").wait_for()
            done = page.inner_text("main")
            assert EMAIL in done and "any list of Moon Shop" in done
            assert page.context.cookies() == []
            page.screenshot(path=str(tmp_path / "unsubscribe-done.png"), full_page=True)
        finally:
            browser.close()

    [event] = served.published
    assert isinstance(event, Unsubscribed)
    assert (event.account, event.campaign, event.list, event.email) == ("acct1", "camp1", "news", EMAIL)
    assert (event.scope, event.method) == ("all", "page")
