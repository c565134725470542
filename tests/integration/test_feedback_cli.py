"""``lunamail feedback ingest`` on a data folder in a temp dir (real SQLite, real files)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from lunamail.domain.feedback import Bounced, Complained, IngestRaw, SoftBounceLimitReached
from lunamail.domain.messages import Message
from lunamail.domain.tracking import Unsubscribed
from lunamail.entrypoints.cli.context import close_apps, get_app
from lunamail.entrypoints.cli.main import app
from lunamail.lib import tokens
from lunamail.lib.verp import encode_return_path
from lunamail.runtime import routing
from lunamail.services.audience import api, reactions
from lunamail.services.feedback import handlers, policy
from lunamail.services.feedback.ingest import remember_campaign_ref

CORPUS = Path(__file__).resolve().parents[1] / "data" / "dsn"
ACCOUNT = "default"
FEEDBACK_ROUTES: dict[type[Message], tuple[routing.Handler, ...]] = {
    IngestRaw: (handlers.ingest_raw,),
    Bounced: (policy.count_soft_bounce, reactions.on_bounced),
    SoftBounceLimitReached: (reactions.on_soft_bounce_limit,),
    Complained: (reactions.on_complained,),
    Unsubscribed: (reactions.on_unsubscribed,),
}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for var in ("LUNAMAIL_CONFIG", "LUNAMAIL_ACCOUNT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LUNAMAIL_DATA_DIR", str(tmp_path / "data"))
    # the feedback rows the lead adds to the routing table, on top of the table as it is
    table = routing._routes

    def with_feedback() -> dict[type[Message], tuple[routing.Handler, ...]]:
        routes = table()
        for cls, hs in FEEDBACK_ROUTES.items():
            routes[cls] = tuple(dict.fromkeys((*routes.get(cls, ()), *hs)))
        return routes

    monkeypatch.setattr(routing, "_routes", with_feedback)
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0  # an uninitialised folder is refused
    yield runner
    close_apps()


def ingest_json(cli: CliRunner, *args: str) -> Any:
    res = cli.invoke(app, ["feedback", "ingest", *args, "--json"])
    assert res.exit_code == 0, res.output
    return orjson.loads(res.stdout)


def test_ingest_files_updates_the_lists_and_is_idempotent(cli: CliRunner, tmp_path: Path) -> None:
    deps = get_app().deps
    news = api.create_list(deps, ACCOUNT, "News")["id"]
    for email in ("jdoe@example.net", "casey@example.com", "taylor@example.com"):
        api.subscribe(deps, ACCOUNT, news, email)
    # a bounce addressed to a return path signed with this data folder's own key
    verp = encode_return_path(deps.secrets.key(ACCOUNT, tokens.VERP), account=ACCOUNT,
                              campaign="launch", email="jdoe@example.net", domain="b.example.com")  # fmt: skip
    remember_campaign_ref(deps, ACCOUNT, "launch")  # as when the campaign started
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for case in ("postfix_hard_511", "arf_yahoo_abuse", "autoreply_ooo_auto_submitted"):
        shutil.copy(CORPUS / f"{case}.eml", inbox / f"{case}.eml")

    out = ingest_json(cli, str(inbox / "postfix_hard_511.eml"), "--envelope-to", verp)
    [hard] = out["results"]
    assert (hard["kind"], hard["bounce_type"], hard["campaign"], hard["recipients"]) == (
        "bounce", "hard", "launch", ["jdoe@example.net"]
    )  # fmt: skip
    assert hard["events"] == [{"name": "feedback.Bounced", "email": "jdoe@example.net", "campaign": "launch",
                               "bounce_type": "hard", "status": "5.1.1"}]  # fmt: skip
    assert out["summary"] == {
        "files": 1,
        "duplicates": 0,
        "errors": 0,
        "events": {"feedback.Bounced": 1},
    }

    out = ingest_json(cli, *(str(p) for p in sorted(inbox.glob("*.eml"))))
    by_file = {Path(r["file"]).stem: r for r in out["results"]}
    assert by_file["postfix_hard_511"]["duplicate"] is True
    assert by_file["postfix_hard_511"]["events"] == []
    assert [e["name"] for e in by_file["arf_yahoo_abuse"]["events"]] == ["feedback.Complained"]
    assert by_file["autoreply_ooo_auto_submitted"]["kind"] == "auto-reply"
    # the corpus tokens were made with another key: the report's recipients are used instead
    assert by_file["arf_yahoo_abuse"]["verp"] is None
    assert out["summary"]["duplicates"] == 1

    # the audience reactions ran in the command's own process
    counts = api.count_by_status(get_app().deps, ACCOUNT, news)
    assert {k: v for k, v in counts.items() if v} == {
        "subscribed": 1,
        "bounced": 1,
        "complained": 1,
    }
    assert api.is_suppressed(get_app().deps, ACCOUNT, "jdoe@example.net")
    stored = list(get_app().deps.blobs.list(f"inbound/{ACCOUNT}/"))
    assert len(stored) == 3


def test_unreadable_file_is_reported_and_fails_the_command(cli: CliRunner, tmp_path: Path) -> None:
    res = cli.invoke(app, ["feedback", "ingest", str(tmp_path / "missing.eml"),
                           str(CORPUS / "qmail_hard.eml"), "--json"])  # fmt: skip
    assert res.exit_code == 1
    doc = orjson.loads(res.stdout)
    assert "cannot read" in doc["results"][0]["error"]
    assert doc["results"][1]["kind"] == "bounce"
    assert doc["summary"]["errors"] == 1


def test_human_output(cli: CliRunner) -> None:
    res = cli.invoke(app, ["feedback", "ingest", str(CORPUS / "gmail_soft_421_rate.eml")])
    assert res.exit_code == 0, res.output
    assert "bounce (soft)" in res.stdout
    assert "feedback.Bounced avery@example.net" in res.stdout
    assert "1 file(s), 1 event(s)" in res.stdout
