"""Tracking events: what recipients (or the machines in front of them) did with a message.

Opens and clicks are always published, machine ones included, with ``machine`` and
a short ``reason`` (e.g. ``"gmail-image-proxy"``), so reports can show human
numbers without losing the raw ones.  ``id`` is unique per request, so a consumer
can count an event delivered twice (the bus is at-least-once) only once.
Every field is a JSON scalar.
"""

from __future__ import annotations

from typing import Literal

from lunamail.domain.messages import Event, message

UnsubscribeScope = Literal["list", "all"]
UnsubscribeMethod = Literal["one-click", "page"]


@message("tracking.Opened")
class Opened(Event):
    """The tracking pixel of ``campaign``'s message to ``email`` was fetched."""

    campaign: str
    email: str
    machine: bool
    reason: str = ""  # why it is a machine open; "" for a human one
    at: float
    id: str = ""


@message("tracking.Clicked")
class Clicked(Event):
    """Tracked link number ``link`` (stable per template link) was followed to ``url``."""

    campaign: str
    email: str
    link: int
    url: str
    machine: bool
    reason: str = ""
    at: float
    id: str = ""


@message("tracking.Unsubscribed")
class Unsubscribed(Event):
    """The recipient asked to stop receiving mail.

    ``scope="list"``: from ``list`` only; ``scope="all"``: from every list of the account
    (the sender).  ``list`` is ``""`` when the link did not name one (then the scope is
    always ``"all"``).  ``method`` says whether a mail client's RFC 8058 one-click POST or
    a person on the confirmation page did it.
    """

    campaign: str
    list: str
    email: str
    scope: UnsubscribeScope
    method: UnsubscribeMethod
    at: float
