"""Shared set-up for end-to-end tests: a data folder with a list and a campaign draft."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lunamail.lib import tokens
from lunamail.ports.secrets import Secrets
from lunamail.runtime.bootstrap import System
from lunamail.services.audience import api as audience
from lunamail.services.campaigns import api as campaigns
from tests.support.domains import add_sending_domain

ACCOUNT = "default"

HTML = (
    "<html><body><h1>Hello {{ subscriber.name }}</h1>"
    "<p>Your city: {{ subscriber.fields.city | default('unknown') }}</p>"
    '<p><a href="https://example.com/read">Read</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
)

_UNSUB = re.compile(rb"^List-Unsubscribe: <[^>]*/u/([A-Za-z0-9_\-.]+)>", re.M)
_TO = re.compile(rb"^To: .*?<([^>]+)>", re.M)
_SUBJECT = re.compile(rb"^Subject: ([^\r\n]*)", re.M)


@dataclass
class Audience:
    list_id: str
    expected: set[str]
    names: dict[str, str]
    excluded: set[str]


def make_audience(system: System, count: int, csv_dir: Path) -> Audience:
    """``count`` subscribers imported from a CSV; a few then unsubscribed or suppressed."""
    deps = system.deps
    lst = audience.create_list(deps, ACCOUNT, "Readers", fields=[{"name": "city", "type": "text"}])
    path = csv_dir / "audience.csv"
    names = {}
    with path.open("w", encoding="utf-8") as f:
        f.write("email,name,city\n")
        for i in range(count):
            email = f"r{i:06d}@example.net"
            names[email] = f"Reader {i}"
            f.write(f"{email},Reader {i},City{i % 7}\n")
    key = f"imports/{ACCOUNT}/audience.csv"
    with path.open("rb") as fh:
        system.blobs.put_stream(key, fh)
    job, first = audience.start_import(deps, ACCOUNT, str(lst["id"]), key)
    system.bus.publish([first])
    assert system.run_until(
        lambda: audience.get_import(deps, ACCOUNT, str(job["id"]))["status"] == "completed", timeout=120
    )
    excluded = set()
    for i in (3, 17, count - 1):
        email = f"r{i:06d}@example.net"
        audience.unsubscribe(deps, ACCOUNT, str(lst["id"]), email)
        excluded.add(email)
    for i in (5, 42):
        email = f"r{i:06d}@example.net"
        audience.suppress(deps, ACCOUNT, email, reason="test")
        excluded.add(email)
    return Audience(str(lst["id"]), set(names) - excluded, names, excluded)


def make_campaign(system: System, list_id: str) -> str:
    """A draft From the account's sending domain (added here, once), so it goes out signed."""
    add_sending_domain(system, ACCOUNT)
    camp = campaigns.create_draft(
        system.deps, ACCOUNT, name="E2E", subject="News for {{ subscriber.name }}",
        from_name="Lunamail Test", from_email="news@sender.example.org", html=HTML, lists=[list_id],
    )
    return camp.id


def check_messages(secrets: Secrets, campaign: str, audience_: Audience,
                   received: Iterable[tuple[str, list[str], bytes]]) -> tuple[dict[str, int], list[str]]:
    """Per recipient: how many messages arrived; and every problem found in them (the
    To header, the personalised subject and the unsubscribe token must all be theirs)."""
    counts: dict[str, int] = {}
    problems: list[str] = []
    key = secrets.key(ACCOUNT, tokens.UNSUBSCRIBE)
    for _, rcpts, data in received:
        for rcpt in rcpts:
            counts[rcpt] = counts.get(rcpt, 0) + 1
        rcpt = rcpts[0]
        to = _TO.search(data)
        subject = _SUBJECT.search(data)
        unsub = _UNSUB.search(data)
        if not to or to.group(1).decode() != rcpt:
            problems.append(f"{rcpt}: To header is {to.group(1) if to else None!r}")
        if not subject or subject.group(1).decode() != f"News for {audience_.names.get(rcpt)}":
            problems.append(f"{rcpt}: subject {subject.group(1) if subject else None!r}")
        found = tokens.read_token(lambda _a: key, unsub.group(1).decode()) if unsub else None
        if found is None or found[1][-1] != rcpt or found[1][1] != campaign:
            problems.append(f"{rcpt}: unsubscribe token does not name them")
    return counts, problems


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` (for work done by another process) until it holds or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
