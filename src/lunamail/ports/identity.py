"""IdentityProvider: single sign-on with an OpenID Connect provider (authorization code
flow with PKCE).  The adapter talks to the provider; the accounts service keeps the
state of a sign-in in progress and decides who the identity is in Lunamail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class IdentityRefused(Exception):
    """The provider's answer cannot sign anyone in (an error from the provider, a code it
    refused, an ID token whose issuer, audience, nonce, signature or times are wrong).
    The message says why, for the log; people see a plain refusal."""


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in, from a verified ID token."""

    issuer: str
    subject: str
    email: str  # "" when the provider gave none
    email_verified: bool


@runtime_checkable
class IdentityProvider(Protocol):
    def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        """Where to send the browser to sign in (S256 PKCE challenge of ``code_verifier``)."""
        ...

    def redeem(self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str) -> Identity:
        """Exchange the code at the token endpoint and verify the ID token (signature by
        the provider's keys, issuer, audience, nonce, expiry); IdentityRefused otherwise."""
        ...
