"""``lunamail guard thresholds`` and ``lunamail guard status`` on a real data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from lunamail.domain.delivery import BatchSent
from lunamail.domain.feedback import Bounced
from lunamail.entrypoints.cli import guard_cmds
from lunamail.entrypoints.cli.context import close_apps, get_app
from lunamail.runtime.bootstrap import bootstrap_in
from lunamail.services.accounts import api as accounts
from lunamail.services.guard import handlers

ACCT = "acme"


def app() -> typer.Typer:
    root = typer.Typer()
    root.command("noop")(lambda: None)  # a second command keeps sub-command routing real
    guard_cmds.register(root)
    return root


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LUNAMAIL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LUNAMAIL_ACCOUNT", ACCT)
    with bootstrap_in(tmp_path / "data") as system:  # the account must exist to act for it
        accounts.create_account(system.deps, "Acme", account_id=ACCT)
    yield tmp_path / "data"
    close_apps()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app(), ["guard", *args])
    return result.exit_code, result.stdout


def test_thresholds_show_set_and_refuse_bad_values() -> None:
    code, out = run("thresholds", "--json")
    assert code == 0 and orjson.loads(out)["campaign_bounce"] == 0.05
    code, out = run("thresholds", "--campaign-bounce", "0.03", "--min-sample", "200", "--json")
    doc = orjson.loads(out)
    assert code == 0 and (doc["campaign_bounce"], doc["min_sample"], doc["account_bounce"]) == (0.03, 200, 0.10)
    code, out = run("thresholds", "--account-complaint", "5", "--json")
    assert code == 1 and "account_complaint" in orjson.loads(out)["error"]["details"]["fields"]
    code, out = run("thresholds")
    assert code == 0 and "3.00%" in out and "200" in out


def test_status_shows_the_score_and_reasons() -> None:
    deps = get_app().deps
    now = deps.clock.now()
    handlers.on_batch_sent(BatchSent(account=ACCT, campaign="c1", batch="0-0", attempt=0, sent=1000,
                                     deferred=0, failed=0, at=now), deps)
    for i in range(40):
        handlers.on_bounced(Bounced(account=ACCT, campaign="c1", email=f"r{i}@example.com",
                                    bounce_type="hard", at=now), deps)
    code, out = run("status", "--json", "--campaign", "c1")
    doc = orjson.loads(out)
    assert code == 0 and doc["score"] == 82 and doc["sent"] == 1000 and doc["bounces"] == 40
    assert doc["reasons"][0]["code"] == "bounce_rate" and doc["campaign"]["bounces"] == 40
    code, out = run("status")
    assert code == 0 and "score 82/100" in out and "4.00%" in out
