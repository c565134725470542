"""Handlers of the accounts service (wired by the runtime's routing table)."""

from __future__ import annotations

from lunamail.domain.accounts import LockAccountSending
from lunamail.domain.messages import Message
from lunamail.ports.deps import Deps
from lunamail.services.accounts import api
from lunamail.services.accounts.errors import NotFound


def handle_lock_account_sending(msg: LockAccountSending, deps: Deps) -> list[Message]:
    """The guard asks to lock an account: lock it once, announce it once.

    An unknown account is dropped rather than retried: retrying cannot make it exist.
    """
    try:
        return list(api.lock_sending(deps, msg.account, msg.reason, dict(msg.numbers)))
    except NotFound:
        return []
