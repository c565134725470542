"""``lunamail campaigns report|export|resend`` on a data folder (real SQLite, real files)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from lunamail.domain.delivery import BatchSent
from lunamail.domain.tracking import Clicked, Opened
from lunamail.entrypoints.cli.context import close_apps
from lunamail.entrypoints.cli.main import app
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from lunamail.services.reports import handlers as rh

A = "default"
EMAILS = [f"m{i:02d}@example.org" for i in range(12)]
OPENERS = EMAILS[:4]

BatchSentE = BatchSent


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A data folder with one campaign sent to 12 addresses, 4 of whom opened."""
    for var in ("LUNAMAIL_CONFIG", "LUNAMAIL_ACCOUNT"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "data"
    monkeypatch.setenv("LUNAMAIL_DATA_DIR", str(folder))
    with bootstrap_in(folder) as system:
        deps, now = system.deps, system.clock.now()
        accounts.create_account(deps, "Default", account_id=A)
        lst = audience.create_list(deps, A, "All")
        camp = campaigns.create_draft(deps, A, name="Launch", subject="We launched",
                                      from_email="team@example.com", html="<p>hi</p>", lists=[lst["id"]])
        rh.on_batch_sent(BatchSentE(account=A, campaign=camp.id, batch="0-0", attempt=0,  # type: ignore[call-arg]
                                    sent=12, deferred=0, failed=0, at=now,
                                    sent_emails=tuple(EMAILS)), deps)
        for i, e in enumerate(OPENERS):
            rh.on_opened(Opened(account=A, campaign=camp.id, email=e, machine=False, at=now, id=str(i)), deps)
        rh.on_clicked(Clicked(account=A, campaign=camp.id, email=EMAILS[0], link=0, url="https://e.org",
                              machine=False, at=now, id="c"), deps)
    yield folder, camp.id
    close_apps()


def run(*args: str) -> Any:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res


def test_report_json_has_every_key(data: tuple[Path, str]) -> None:
    _, cid = data
    doc = orjson.loads(run("campaigns", "report", cid, "--json").stdout)
    assert {"planned", "sent", "deferred", "failed", "status", "progress", "delivered", "bounced",
            "complained", "opened", "clicked", "unsubscribed", "rates", "links"} <= set(doc)
    assert set(doc["rates"]) == {"delivery_rate", "bounce_rate", "complaint_rate", "open_rate",
                                 "click_rate", "click_to_open_rate", "unsubscribe_rate"}
    assert (doc["sent"], doc["opened"]["unique"], doc["clicked"]["unique"]) == (12, 4, 1)
    assert doc["rates"]["open_rate"] == round(4 / 12, 4)


def test_report_table_and_follow_end(data: tuple[Path, str]) -> None:
    _, cid = data
    assert "open rate" in run("campaigns", "report", cid).stdout
    followed = run("campaigns", "report", cid, "--follow", "--max-seconds", "0.2")
    assert "click to open rate" in followed.stdout


def test_report_of_an_unknown_campaign_is_an_error(data: tuple[Path, str]) -> None:
    res = CliRunner().invoke(app, ["campaigns", "report", "nope", "--json"])
    assert res.exit_code != 0
    assert "error" in orjson.loads(res.stdout)


def test_export_non_openers_to_a_file_and_opened_to_stdout(data: tuple[Path, str], tmp_path: Path) -> None:
    _, cid = data
    out = tmp_path / "non.csv"
    run("campaigns", "export", cid, "--which", "non-openers", "--out", str(out))
    assert out.read_text("utf-8").splitlines() == ["email", *EMAILS[4:]]
    assert run("campaigns", "export", cid, "--which", "opened").stdout.splitlines() == ["email", *OPENERS]


def test_resend_json(data: tuple[Path, str]) -> None:
    folder, cid = data
    doc = orjson.loads(run("campaigns", "resend", cid, "--to", "non-openers", "--json").stdout)
    assert doc["recipients"] == 8
    close_apps()
    with bootstrap_in(folder) as system:
        follow_up = campaigns.get(system.deps, A, doc["campaign"])
        assert (follow_up.subject, follow_up.lists) == ("Re: We launched", (doc["list"],))
        subs, _ = audience.list_subscribers(system.deps, A, doc["list"], limit=100)
        assert sorted(s["email"] for s in subs) == EMAILS[4:]
