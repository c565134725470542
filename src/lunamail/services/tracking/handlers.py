"""Event consumers of the tracking service."""

from __future__ import annotations

from lunamail.domain.campaigns import CampaignSendStarted
from lunamail.domain.messages import Message
from lunamail.ports.deps import Deps
from lunamail.services.tracking.keys import CONTENT_SK, campaign_pk


def on_campaign_send_started(msg: CampaignSendStarted, deps: Deps) -> list[Message]:
    """Keep our own copy of the campaign content, so the web view never reads another
    service's items.  Safe to run twice; a late redelivery of an older start (the bus
    may reorder) never overwrites the content of a newer one."""
    pk = campaign_pk(msg.account, msg.campaign)
    current = deps.store.get(pk, CONTENT_SK)
    if current is not None and float(current.get("started_at", 0)) > msg.started_at:
        return []
    deps.store.put({
        "pk": pk,
        "sk": CONTENT_SK,
        "content": dict(msg.content),
        "lists": list(msg.lists),
        "started_at": msg.started_at,
    })
    return []
