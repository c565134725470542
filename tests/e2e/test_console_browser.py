"""The whole job in the console, in a real browser: ``lunamail serve``'s app (API, console
and the workers in process) on a free port of 127.0.0.1, a real SMTP server on another,
Debian's Chromium driven by Playwright.

A new owner signs in with the one-time link and sets a password, creates a list,
imports a CSV whose town column is remapped to a custom field, writes a campaign while
the preview follows, sends a test, sends to the SMTP server, watches the live report
move, pauses and resumes, finds the recipient the relay refused in the ledger with its
reply, and cancels another campaign.  Every screen is checked with
axe-core (no serious or critical violation) and photographed: into ``docs/screenshots/``
(which the README shows) when ``UPDATE_SCREENSHOTS=1`` is set, else into the test's own
temporary folder, so a test run leaves the work tree as it found it.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lunamail.app import accounts as app_accounts
from lunamail.app.base import Env
from lunamail.devtools.smtp_capture import CaptureServer
from lunamail.entrypoints.cli.server_cmds import serve_all
from lunamail.runtime.bootstrap import System, bootstrap_in
from tests.e2e.test_unsubscribe_browser import CHROMIUM, CHROMIUM_ARGS, _browser_or_fail
from tests.support.domains import add_sending_domain
from tests.support.motoserver import free_port
from tests.support.serving import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
DOC_SHOTS = ROOT / "docs" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
OWNER = "owner@example.com"
PASSWORD = "moonlight sonata 1801"
READERS = 60
REFUSED = "reader007@example.com"  # the relay refuses this one (550 5.1.1)


@dataclass
class Running:
    base: str
    system: System
    smtp: CaptureServer
    link: str


@pytest.fixture()
def running(tmp_path: Path) -> Iterator[Running]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with CaptureServer("127.0.0.1", 0, fail={REFUSED: (550, "5.1.1 no such user here")}) as smtp:
        system = bootstrap_in(tmp_path / "data", settings_overrides={
            "base_url": base, "smtp_url": f"smtp://127.0.0.1:{smtp.port}", "send_rate": 4.0,
            "batch_size": 10, "page_size": 20, "workers": 2, "smtp_connections": 1,
        })
        link = app_accounts.initialise(Env(system.deps, system.bus.publish), owner=OWNER).owner_link
        assert link is not None
        add_sending_domain(system, domain="moon.example.org")  # the From the owner writes below
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve_all(system, host="127.0.0.1", port=port, stop=stop,
                                              log_level="warning", worker_processes=0))

        thread = threading.Thread(target=run, name="console-e2e", daemon=True)
        thread.start()
        try:
            wait_until_serving(base)
            yield Running(base, system, smtp, link)
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=60)
            assert not thread.is_alive(), "lunamail serve did not stop"
            system.close()


def _csv(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["E-mail Address", "Full name", "Town"])
        for i in range(READERS):
            w.writerow([f"reader{i:03d}@example.com", f"Reader {i}", ["Lisbon", "Oslo", "Kyoto"][i % 3]])
        w.writerow(["not-an-address", "Broken Row", "Nowhere"])
    return path


class Screens:
    """Takes the screenshot of each screen and runs axe-core on it."""

    def __init__(self, page: Any, into: Path) -> None:
        self.page = page
        self.into = DOC_SHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else into
        self.checked: dict[str, list[str]] = {}
        self.into.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str) -> None:
        page = self.page
        page.wait_for_load_state("load")
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("async () => JSON.stringify(await axe.run(document, {resultTypes: ['violations']}))")
        bad = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
               for v in json.loads(result)["violations"] if v["impact"] in ("serious", "critical")]
        self.checked[name] = bad
        page.screenshot(path=str(self.into / f"{name}.png"), full_page=True)


def _count(page: Any, key: str) -> int:
    return int(page.locator(f'[data-k="{key}"]').first.inner_text() or 0)


def test_a_new_owner_runs_the_whole_job_in_the_console(running: Running, tmp_path: Path) -> None:
    assert AXE.exists(), "axe-core is missing: run `make assets` (npm ci)"
    sync_playwright = _browser_or_fail()
    people = _csv(tmp_path / "readers.csv")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            shot = Screens(page, tmp_path / "screenshots")

            # 1. the one-time link: set a password, land signed in on an empty dashboard
            page.goto(running.link)
            page.get_by_role("heading", name="Set your password").wait_for()
            shot("set-password")
            page.get_by_label("New password").fill(PASSWORD)
            page.get_by_label("Repeat it").fill(PASSWORD)
            page.get_by_role("button", name="Set password and sign in").click()
            page.get_by_role("heading", name="Dashboard").wait_for()
            assert "creating a list" in page.inner_text("main")
            shot("dashboard-empty")
            page.goto(running.link)  # spent
            assert "does not work any more" in page.inner_text("main")

            # sign out, then in with the new password
            page.goto(running.base + "/")
            page.get_by_role("button", name="Sign out").click()
            page.get_by_role("heading", name="Sign in").wait_for()
            shot("sign-in")
            page.get_by_label("E-mail address").fill(OWNER)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("heading", name="Dashboard").wait_for()

            # 2. a list with a custom field
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Lists").click()
            assert "No lists yet" in page.inner_text("main")
            page.get_by_label("Name").fill("Readers")
            page.get_by_label("Custom fields").fill("city")
            page.get_by_role("button", name="Create list").click()
            page.get_by_role("heading", name="Readers").wait_for()
            shot("list-empty")

            # 3. import with the Town column remapped to the custom field "city"
            page.get_by_role("link", name="Import a CSV").click()
            page.get_by_label("CSV file").set_input_files(str(people))
            page.get_by_text("UTF-8, comma separated, 3 columns").wait_for()
            page.get_by_label("Column “Town” goes to").select_option("city")
            assert page.locator("#preview-rows td", has_text="reader000@example.com").count() == 1
            shot("import-mapping")
            page.get_by_role("button", name="Import").click()
            page.locator("#import-summary").wait_for(timeout=60_000)
            summary = page.inner_text("#import-summary")
            assert f"Imported\n{READERS}" in summary and "Rejected\n1" in summary
            assert page.get_by_role("link", name="Download the rejected rows (CSV)").count() == 1
            shot("import-done")
            page.get_by_role("link", name="Back to the list").click()
            # htmx binds the search box when the page has loaded; typing before that is
            # a keystroke no script hears (CI's slower box showed it)
            page.get_by_role("heading", name="Readers").wait_for()
            page.wait_for_load_state("load")
            page.get_by_label("Search by address prefix").fill("reader01")
            page.wait_for_function("() => document.querySelectorAll('#subscribers tbody tr').length === 10")
            assert page.locator("#subscribers td", has_text="reader010@example.com").count() == 1
            shot("list")
            page.get_by_role("link", name="reader010@example.com").click()
            facts = page.inner_text(".facts")
            assert "Reader 10" in facts and "Oslo" in facts  # the remapped column landed in city
            history = page.inner_text("#history")  # the consent history: added by the import
            assert "imported" in history and "import" in history
            shot("subscriber")

            # 4. a campaign written while the preview follows
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
            page.get_by_label("Name").fill("Spring issue")
            page.get_by_label("List").select_option(label="Readers")
            page.get_by_role("button", name="Create draft").click()
            page.get_by_role("heading", name="Spring issue").wait_for()
            page.wait_for_load_state("load")
            page.get_by_label("Subject").fill("Spring news for {{ subscriber.name }}")
            page.get_by_label("From name").fill("Moon Press")
            page.get_by_label("From address").fill("news@moon.example.org")
            page.wait_for_function("() => window.lunamailEditor !== undefined")
            page.evaluate("""() => window.lunamailEditor.setValue(
                '<h1>Hello {{ subscriber.name }} in {{ subscriber.fields.city }}</h1>' +
                '<p><a href="https://moon.example.org/spring">Read it</a></p>' +
                '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')""")
            frame = page.frame_locator("#preview-frame")
            frame.get_by_role("heading", name="Hello Jane Doe").wait_for()  # the sample person
            page.get_by_label("Preview as").select_option(label="Reader 4 (reader004@example.com)")
            page.frame_locator("#preview-frame").get_by_role("heading", name="Hello Reader 4 in Oslo").wait_for()
            assert "Spring news for Reader 4" in page.inner_text("#preview-pane .subject")
            page.locator("#ready").wait_for()
            shot("campaign-editor")
            page.get_by_role("button", name="Mobile").click()
            assert page.locator("#preview-box.mobile").count() == 1
            page.wait_for_function("""() => { const f = document.querySelector('#preview-frame');
                const w = f ? f.getBoundingClientRect().width : 0; return w > 300 && w <= 375; }""")
            shot("campaign-editor-mobile")

            # 5. a test, then the real send to the SMTP server
            page.get_by_label("Send a test to").fill("tester@example.com")
            page.get_by_role("button", name="Send test").click()
            # what the relay answered (or, on a slow box, that it has not answered yet)
            page.get_by_text(re.compile(r"Test (sent to|queued for) tester@example\.com")).wait_for()
            assert running.smtp.wait_for(1, timeout=30)
            assert running.smtp.messages[0][1] == ["tester@example.com"]
            page.get_by_role("button", name="Send now").click()
            page.get_by_role("heading", name="Report: Spring issue").wait_for()
            page.get_by_text("live", exact=True).wait_for()
            seen = {_count(page, "sent")}
            page.wait_for_function("() => Number(document.querySelector('[data-k=sent]').textContent) >= 4")
            seen.add(_count(page, "sent"))
            shot("report-live")
            page.get_by_role("button", name="Pause").click()
            page.locator("#r-status", has_text="paused").wait_for()
            paused_at = _count(page, "sent")
            assert 0 < paused_at < READERS
            page.get_by_role("button", name="Resume").click()
            page.wait_for_function(f"() => Number(document.querySelector('[data-k=sent]').textContent) > {paused_at}")
            seen.add(_count(page, "sent"))
            page.locator("#r-status", has_text="sent").wait_for(timeout=60_000)
            page.get_by_text("final numbers").wait_for()
            assert _count(page, "sent") == READERS - 1 and _count(page, "failed") == 1
            assert len(seen) >= 3  # the numbers moved while we watched
            shot("report-final")
            assert running.smtp.wait_for(READERS, timeout=30)  # the test copy and all but the refused one
            # the refused recipient in the ledger, with what the relay said
            page.get_by_role("link", name="refused", exact=True).click()
            page.get_by_role("heading", name="Recipients: Spring issue").wait_for()
            ledger = page.inner_text("main")
            assert REFUSED in ledger and "550" in ledger and "no such user here" in ledger
            assert "reader008@example.com" not in ledger
            shot("report-refused-recipients")

            # 6. another campaign, sent and cancelled
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
            page.get_by_label("Name").fill("Oops issue")
            page.get_by_label("List").select_option(label="Readers")
            page.get_by_role("button", name="Create draft").click()
            page.get_by_role("heading", name="Oops issue").wait_for()
            page.wait_for_load_state("load")
            page.get_by_label("Subject").fill("Oops")
            page.get_by_label("From address").fill("news@moon.example.org")
            page.locator("#ready").wait_for()
            page.get_by_role("button", name="Send now").click()
            page.get_by_role("heading", name="Report: Oops issue").wait_for()
            page.get_by_role("button", name="Cancel").click()
            page.locator("#r-status", has_text="cancelled").wait_for()
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
            assert "cancelled" in page.inner_text("main") and "sent" in page.inner_text("main")
            shot("campaigns")
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
            shot("dashboard")

            # 7. the other screens
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Lists").click()
            shot("lists")
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Suppression").click()
            page.get_by_label("E-mail").fill("reader000@example.com")
            page.get_by_role("button", name="Suppress").click()
            page.get_by_role("cell", name="reader000@example.com", exact=True).wait_for()
            shot("suppression")
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
            page.get_by_label("E-mail").fill("viewer@example.com")
            page.get_by_label("Role", exact=True).select_option("viewer")
            page.get_by_role("button", name="Add user").click()
            viewer_link = page.get_by_label("One-time link").input_value()
            shot("users")
            page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
            page.get_by_label("Label").fill("reporting")
            page.get_by_role("button", name="Create key").click()
            assert page.get_by_label("The new API key").input_value().startswith("lm_")
            shot("keys")

            # 8. a viewer, in a fresh browser context: no send, no users
            viewer = browser.new_context(viewport={"width": 375, "height": 800}, bypass_csp=True).new_page()
            viewer.goto(viewer_link)
            viewer.get_by_label("New password").fill(PASSWORD)
            viewer.get_by_label("Repeat it").fill(PASSWORD)
            viewer.get_by_role("button", name="Set password and sign in").click()
            viewer.get_by_role("heading", name="Dashboard").wait_for()
            assert viewer.get_by_role("navigation", name="Main").get_by_role("link", name="Users").count() == 0
            viewer.get_by_role("link", name="Spring issue").first.click()
            viewer.get_by_role("heading", name="Report: Spring issue").wait_for()
            assert viewer.get_by_role("button", name="Pause").count() == 0
            Screens(viewer, tmp_path / "screenshots")("report-viewer-375px")
            assert errors == []
        finally:
            browser.close()

    bad = {name: found for name, found in shot.checked.items() if found}
    assert bad == {}, f"axe-core found serious or critical violations: {bad}"
    assert len(shot.checked) >= 16
