"""Deps: what a handler may use.  Built once by the bootstrap and injected.

Handlers take ``(message, deps)`` and return the messages they emit, so the
same handler runs under the local runtime, in a Lambda function, or in a
unit test with fakes.
"""

from __future__ import annotations

from dataclasses import dataclass

from lunamail.config import Settings
from lunamail.ports.blobs import Blobs
from lunamail.ports.clock import Clock
from lunamail.ports.dns import Resolver
from lunamail.ports.identity import IdentityProvider
from lunamail.ports.itemstore import ItemStore
from lunamail.ports.mailer import Mailer
from lunamail.ports.secrets import Secrets


@dataclass
class Deps:
    settings: Settings
    store: ItemStore
    blobs: Blobs
    clock: Clock
    secrets: Secrets
    mailer: Mailer | None = None  # only the delivery handlers need it; built lazily by bootstrap
    identity: IdentityProvider | None = None  # console single sign-on, when an OIDC issuer is set
    resolver: Resolver | None = None  # DNS, for the sending-domain checks (resolves lazily)
