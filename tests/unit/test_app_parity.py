"""CLI and REST API parity: every use case of ``lunamail.app`` is reachable from both doors,
or this file says in writing why it is not.

A door "reaches" a use case when one of its modules calls it (``campaigns.send`` after
``from lunamail.app import campaigns``), found by reading the source, so a new use case
or a removed command shows up here without anything to register.  An entry of
``ONE_DOOR`` that both doors reach now is stale and fails too: delete it."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import lunamail.app
from lunamail.app.base import USE_CASES

ENTRYPOINTS = Path(lunamail.app.__file__).parents[1] / "entrypoints"

#: Use cases one door has and the other has not, each with the reason.
ONE_DOOR: dict[str, str] = {
    "accounts.me": "HTTP only: a key asks who it is; on the CLI the operator names the account",
    "accounts.create_account": "CLI only: creating tenants is the installation operator's act, not a tenant key's",
    "accounts.list_accounts": "CLI only: listing every tenant is the installation operator's, not a tenant key's",
    "accounts.unlock": "CLI only: lifting a guard lock is the operator's decision after fixing the cause",
    "audience.declare_import": "HTTP only: a client uploads to a signed URL between declare and start",
    "audience.start_import": "HTTP only: the second step of the upload protocol",
    "audience.import_error_report": "HTTP only: the CLI prints the report's path with the import summary",
    "audience.import_file": "CLI only: the caller holds the file and streams it in one call",
    "audience.merge_case_duplicates": "CLI only: an upgrade step the operator runs on the data folder "
                                      "(lunamail migrate), once per installation",
    "feedback.ingest": "CLI only: raw mail reaches the HTTP side through SES/SNS, not as uploads",
    "reports.campaign_status": "HTTP only: the live stream's status read (a deleted campaign ends the "
                               "stream); the CLI's live report reads the campaign itself",
    "reports.live_report": "HTTP only: the live stream's report read, None once the campaign is deleted",
    "reports.timeseries": "HTTP only: per-minute rows for charts; the CLI's live report shows the counters",
    "users.new_link": "CLI only: the operator hands an owner a one-time link; over HTTP users reset their own",
}

#: Use cases neither the CLI nor the HTTP API calls yet, with the reason.
NO_DOOR: dict[str, str] = {
    "feedback.take_ses_notification": "reached through feedback.take_sns_message, which the public SNS "
                                      "route calls once the signature is checked (the signature, not a "
                                      "key, is the authority there); raw mail has `feedback ingest`",
    "campaigns.checklist": "the console's pre-send checklist; the CLI and HTTP API give the same "
                           "reasons when they refuse a send",
    "campaigns.unschedule": "the console's unschedule button; the CLI and HTTP twins come with the "
                            "API-contract work",
    "guard.recent_actions": "for the console's guard page (its own issue)",
    "accounts.sending_defaults": "the console's settings screen; the CLI reads the settings file itself",
    "users.two_factor_status": "a person's own second factor is set up in the console they sign in to",
    "users.start_two_factor": "a person's own second factor is set up in the console they sign in to",
    "users.confirm_two_factor": "a person's own second factor is set up in the console they sign in to",
    "users.stop_two_factor": "a person's own second factor is set up in the console they sign in to",
    "users.require_two_factor": "the console's settings screen (owners); it governs console sign-in only",
    "onboarding.first_run": "the console dashboard's first-run checklist (a summary of what the CLI "
                            "and API list one by one)",
    "reports.summaries": "the console's campaign rows in one read; `campaigns ls` and GET /v1/campaigns "
                         "list campaigns without counters (the report is per campaign there)",
}


def _load_all() -> None:
    for mod in pkgutil.iter_modules(lunamail.app.__path__):
        importlib.import_module(f"lunamail.app.{mod.name}")


def reached(door: str) -> set[str]:
    """The use cases the modules of ``entrypoints/<door>`` call."""
    out: set[str] = set()
    for path in (ENTRYPOINTS / door).rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        alias: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "lunamail.app":
                for name in node.names:
                    alias[name.asname or name.name] = name.name
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lunamail.app."):
                area = str(node.module).rsplit(".", 1)[1]
                out.update(f"{area}.{name.name}" for name in node.names)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in alias:
                out.add(f"{alias[node.value.id]}.{node.attr}")
    return out & set(USE_CASES)


def test_every_use_case_is_reachable_from_both_doors_or_says_why() -> None:
    _load_all()
    assert len(USE_CASES) > 40  # the layer was loaded
    cli, http = reached("cli"), reached("http")
    problems = []
    for name in sorted(USE_CASES):
        doors = ({"cli"} if name in cli else set()) | ({"http"} if name in http else set())
        if doors == {"cli", "http"}:
            if name in ONE_DOOR or name in NO_DOOR:
                problems.append(f"{name}: both doors reach it now; delete its allow-list entry")
        elif not doors:
            if name not in NO_DOOR:
                problems.append(f"{name}: no door calls it; add a command and a route (or a NO_DOOR reason)")
        elif name not in ONE_DOOR:
            problems.append(f"{name}: only the {doors.pop().upper()} reaches it; add the other door or a reason")
        elif name in NO_DOOR:
            problems.append(f"{name}: a door calls it now; move it out of NO_DOOR")
    for name in sorted((set(ONE_DOOR) | set(NO_DOOR)) - set(USE_CASES)):
        problems.append(f"{name}: no such use case; delete its allow-list entry")
    assert not problems, "\n".join(problems)


def test_the_reasons_are_written() -> None:
    for name, reason in {**ONE_DOOR, **NO_DOOR}.items():
        assert len(reason.split()) >= 4, name
