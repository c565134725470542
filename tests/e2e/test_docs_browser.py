"""``/docs`` and ``/redoc`` of a running ``lunamail serve`` render in Chromium with the
network cut off: every request that is not to 127.0.0.1 is aborted (and recorded), and
the pages still list the API's operations, because their files ship in the package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lunamail.runtime.bootstrap import bootstrap_in
from tests.e2e.test_unsubscribe_browser import CHROMIUM, CHROMIUM_ARGS, _browser_or_fail
from tests.support.live_server import live_serve


@pytest.fixture()
def base(tmp_path: Path) -> Iterator[str]:
    system = bootstrap_in(tmp_path / "data")
    try:
        with live_serve(system, workers=False) as url:
            yield url
    finally:
        system.close()


def _offline(page: Any, blocked: list[str]) -> None:
    def route(r: Any) -> None:
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)


def test_swagger_ui_and_redoc_render_offline(base: str, tmp_path: Path) -> None:
    sync_playwright = _browser_or_fail()
    blocked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            _offline(page, blocked)
            page.goto(f"{base}/docs")
            page.locator(".opblock").first.wait_for()
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert len(paths) >= 30
            assert any(p.replace("\u200b", "") == "/v1/lists" for p in paths)
            assert page.get_by_text("Create a draft campaign").count() >= 1
            page.screenshot(path=str(tmp_path / "docs.png"))

            page.goto(f"{base}/redoc")
            page.locator("h2", has_text="Create a draft campaign").first.wait_for()
            assert page.locator("[data-section-id^='tag/']").count() >= 5
            page.screenshot(path=str(tmp_path / "redoc.png"))
        finally:
            browser.close()
    assert blocked == []  # nothing was even asked of the network
