"""The guided first run: what a new account still has to do before its first send, read
from what is really there (the sending domain's key, lists, subscribers, campaigns),
so the dashboard's checklist ticks itself as the work gets done."""

from __future__ import annotations

from dataclasses import dataclass

from lunamail.lib.dkim import signing_domain
from lunamail.services.audience import api as audience_api
from lunamail.services.campaigns import api as campaigns_api
from lunamail.services.delivery import api as delivery_api

from .base import Actor, Env, query

#: How many of the newest campaigns the checklist looks at (a new account has a few).
LOOKED_AT = 20


@dataclass(frozen=True)
class Step:
    key: str  # domain, list, import, campaign, send
    title: str
    done: bool
    detail: str  # what is there, or what to do next
    href: str  # where to do it


@dataclass(frozen=True)
class FirstRun:
    steps: list[Step]

    @property
    def done(self) -> bool:
        return all(s.done for s in self.steps)

    @property
    def left(self) -> int:
        return sum(1 for s in self.steps if not s.done)


@query()
def first_run(env: Env, actor: Actor) -> FirstRun:
    """The first-run checklist: a signed sending domain with a campaign From it, a list,
    subscribers in it, a campaign, a send."""
    deps = env.deps
    # the account's sending domains (their keys sign their subdomains too), then the
    # installation's own keys (the dkim setting)
    own = [d.domain for d in delivery_api.list_domains(deps, actor.account, limit=100)[0]]
    keys = tuple(dict.fromkeys([*own, *(k.domain for k in deps.settings.dkim)]))
    lists = audience_api.list_lists(deps, actor.account)
    found = campaigns_api.list_campaigns(deps, actor.account, limit=LOOKED_AT).items
    signed = [c for c in found if c.from_email and signing_domain(keys, c.from_email.rpartition("@")[2])]
    with_people = [x for x in lists if sum(x["counts"].values())]
    drafts = [c for c in found if str(c.status) == "draft"]
    # newest first, a fully sent one before those still sending, paused or cancelled
    sent = sorted((c for c in found if str(c.status) != "draft"), key=lambda c: str(c.status) != "sent")
    if not keys:
        domain_detail = ("No DKIM key yet: add your sending domain (`lunamail domains add example.com`) and "
                         "publish the DNS records it prints, so your mail is signed; then write campaigns "
                         "From that domain.")
    elif not signed:
        domain_detail = f"Signed domains: {', '.join(keys)}. Give a campaign a From address on one of them."
    else:
        by = signing_domain(keys, signed[0].from_email.rpartition("@")[2])
        domain_detail = f"{signed[0].from_email} is signed by the key of {by}."
    first_list = lists[0]["id"] if lists else ""
    steps = [
        Step("domain", "Sending domain and From address", bool(signed), domain_detail,
             f"/campaigns/{found[0].id}" if found else "/settings#sending"),
        Step("list", "Create a list", bool(lists),
             f"{len(lists)} list{'s' if len(lists) != 1 else ''}: {', '.join(x['name'] for x in lists[:3])}"
             if lists else "A list holds your subscribers and their custom fields.", "/lists"),
        Step("import", "Import your subscribers", bool(with_people),
             f"{sum(sum(x['counts'].values()) for x in with_people)} subscribers in {with_people[0]['name']}"
             if with_people else "Upload a CSV (any delimiter and encoding); you map its columns.",
             f"/lists/{first_list}/import" if first_list else "/lists"),
        Step("campaign", "Write a campaign", bool(found),
             f"{len(found)} campaign{'s' if len(found) != 1 else ''}, newest: {found[0].name}" if found
             else "Write it in the editor while the preview shows a subscriber's copy.", "/campaigns"),
        Step("send", "Send a test, then send", bool(sent),
             f"{sent[0].name} is {sent[0].status}" if sent else "The pre-send checklist says what is missing.",
             f"/campaigns/{(sent or drafts or found)[0].id}" if found else "/campaigns"),
    ]
    return FirstRun(steps)
