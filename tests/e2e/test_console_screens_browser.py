"""The console's newer screens in Debian's Chromium, each checked with axe-core (no
serious or critical violation) and photographed like the main walk: the first-run
checklist, setting up two-factor sign-in (QR code, recovery codes) and signing in with a
code, a campaign's recipients filtered by outcome, the dead letters with a replay, and
the settings screen.  ``lunamail serve``'s app runs on a free port of 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyotp

from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts
from lunamail.services.accounts import users
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from lunamail.services.delivery import keys as delivery_keys
from tests.e2e.test_console_browser import AXE, Screens
from tests.e2e.test_unsubscribe_browser import CHROMIUM, CHROMIUM_ARGS, _browser_or_fail
from tests.support.live_server import live_serve

OWNER = "lea@example.org"
PASSWORD = "a console password 42"
HTML = '<p>Hi {{ subscriber.name }} <a href="{{ unsubscribe_url }}">unsubscribe</a></p>'


def test_the_newer_screens_in_a_browser(tmp_path: Path) -> None:
    assert AXE.exists(), "axe-core is missing: run `make assets` (npm ci)"
    sync_playwright = _browser_or_fail()
    system = bootstrap_in(tmp_path / "data", settings_overrides={"max_attempts": 1})
    deps = system.deps
    accounts.create_account(deps, "Default", account_id="default")
    users.add_user(deps, "default", OWNER, "owner")
    users.set_password(deps, "default", OWNER, PASSWORD)
    lst = audience.create_list(deps, "default", "Readers")
    audience.subscribe(deps, "default", lst["id"], "ann@example.com", name="Ann")
    c = campaigns.create_draft(deps, "default", name="June news", subject="Hi", html=HTML, lists=[lst["id"]])
    for email, rec in (("ann@example.com", {"status": "sent", "code": 250, "relay_id": "Q1"}),
                       ("gone@example.com", {"status": "failed", "code": 550, "reply": "550 5.1.1 no such user"})):
        pk, sk = delivery_keys.record_key("default", c.id, email)
        deps.store.put({"pk": pk, "sk": sk, "at": deps.clock.now(), **rec})
    system.queue.send("lunamail-test-dlq", orjson.dumps({"name": "audience.ImportChunk",
                                                         "body": {"account": "default"}}))
    [msg] = system.queue.receive(["lunamail-test-dlq"])
    assert system.queue.fail(msg, "relay down\ntraceback")
    try:
        with live_serve(system, worker_processes=0, workers=False) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
                page = context.new_page()
                page.set_default_timeout(60_000)
                page.on("dialog", lambda dialog: dialog.accept())
                shot = Screens(page, tmp_path / "screenshots")

                page.goto(base + "/login")
                page.wait_for_load_state("load")
                page.get_by_label("E-mail address").fill(OWNER)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("heading", name="Dashboard").wait_for()
                assert "Get started: 2 of 5 steps left" in page.inner_text("main")
                shot("dashboard-first-run")

                # two-factor sign-in: set it up on the settings screen
                page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
                page.get_by_role("heading", name="Settings", exact=True).wait_for()
                page.get_by_role("button", name="Set up two-factor sign-in").click()
                page.get_by_role("img", name="QR code of the key for your authenticator app").wait_for()
                shot("settings-two-factor")
                key = page.locator("figcaption code.secret").inner_text().strip()
                page.get_by_label("Code from the app").fill(pyotp.TOTP(key).now())
                page.get_by_role("button", name="Turn on").click()
                page.get_by_text("Two-factor sign-in is on.").wait_for()
                assert page.locator("ul.codes li").count() == 10
                shot("settings")

                # sign out and in again: password, then a code
                page.get_by_role("button", name="Sign out").click()
                page.get_by_role("heading", name="Sign in").wait_for()
                page.get_by_label("E-mail address").fill(OWNER)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("heading", name="Two-factor sign-in").wait_for()
                shot("sign-in-two-factor")
                page.get_by_label("Code").fill(pyotp.TOTP(key).at(deps.clock.now() + 30))
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("heading", name="Dashboard").wait_for()

                # the recipients ledger, filtered to the refused ones
                page.goto(f"{base}/campaigns/{c.id}/recipients")
                page.wait_for_load_state("load")
                page.get_by_label("Outcome").select_option("failed")
                page.get_by_role("button", name="Show").click()
                page.wait_for_url("**status=failed**")
                main = page.inner_text("main")
                assert "gone@example.com" in main and "550 5.1.1 no such user" in main
                assert "ann@example.com" not in main
                shot("recipients")

                # the dead letters: choose one and replay it
                page.get_by_role("navigation", name="Main").get_by_role("link", name="Dead letters").click()
                page.get_by_role("heading", name="Dead letters").wait_for()
                assert "relay down" in page.inner_text("main")
                shot("dead-letters")
                page.get_by_label(f"Replay audience.ImportChunk {msg.id}").check()
                page.get_by_role("button", name="Replay the chosen").click()
                page.get_by_text("Replayed 1 message").wait_for()

                bad = {name: found for name, found in shot.checked.items() if found}
                assert not bad, bad
            finally:
                browser.close()
    finally:
        system.close()
