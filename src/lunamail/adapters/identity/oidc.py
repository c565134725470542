"""An OpenID Connect relying party on Authlib: the authorization request with PKCE (S256),
the code exchange at the token endpoint, and the ID token's checks.

The provider's metadata (``/.well-known/openid-configuration``) and keys are read once
and kept; an ID token signed with a key id we do not know makes one fresh read of the
keys (the provider rotated them).  Only asymmetric signatures are accepted, and the
token must name this provider as issuer and this client as audience (Authlib's ID token
claims check the nonce, the authorised party and the access token hash; the issuer and
audience are asked for explicitly here).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from lunamail.ports.identity import Identity, IdentityRefused

SCOPE = "openid email"
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
LEEWAY_SECONDS = 60
MAX_RESPONSE_BYTES = 256 * 1024


class OidcClient:
    def __init__(self, issuer: str, client_id: str, client_secret: str, *, timeout: float = 10.0,
                 http: httpx.Client | None = None) -> None:
        if not issuer or not client_id:
            raise ValueError("an OpenID Connect client needs the issuer and the client id")
        self.issuer = issuer
        self.client_id = client_id
        self._secret = client_secret
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=False)
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, Any] | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"OidcClient({self.issuer!r}, {self.client_id!r})"

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ provider documents

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            resp = self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as e:
            raise IdentityRefused(f"cannot reach the provider at {url}: {e}") from e
        if resp.status_code != 200 or len(resp.content) > MAX_RESPONSE_BYTES:
            raise IdentityRefused(f"the provider answered {resp.status_code} for {url}")
        try:
            doc = resp.json()
        except ValueError as e:
            raise IdentityRefused(f"the provider's {url} is not JSON") from e
        if not isinstance(doc, dict):
            raise IdentityRefused(f"the provider's {url} is not a JSON object")
        return doc

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                doc = self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
                if doc.get("issuer") != self.issuer:  # OpenID Connect Discovery 1.0, section 4.3
                    raise IdentityRefused(f"the provider calls itself {doc.get('issuer')!r}, not {self.issuer!r}")
                for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(doc.get(name), str):
                        raise IdentityRefused(f"the provider's metadata has no {name}")
                self._metadata = doc
            return self._metadata

    def _key_set(self, *, fresh: bool = False) -> KeySet:
        with self._lock:
            keys = self._keys
        if keys is None or fresh:
            keys = self._get_json(str(self.metadata()["jwks_uri"]))
            with self._lock:
                self._keys = keys
        try:
            return KeySet.import_key_set(keys)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as e:
            raise IdentityRefused(f"the provider's keys cannot be read: {e}") from e

    # ------------------------------------------------------------ the flow

    def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        url: str = prepare_grant_uri(
            self.metadata()["authorization_endpoint"], self.client_id, "code", redirect_uri=redirect_uri,
            scope=SCOPE, state=state, nonce=nonce, code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
        return url

    def redeem(self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str) -> Identity:
        meta = self.metadata()
        # RFC 6749 section 2.3.1: the id and secret are form-encoded before Basic encoding
        auth = (quote(self.client_id, safe=""), quote(self._secret, safe=""))
        try:
            resp = self._http.post(str(meta["token_endpoint"]), auth=auth, headers={"Accept": "application/json"},
                                   data={"grant_type": "authorization_code", "code": code,
                                         "redirect_uri": redirect_uri, "code_verifier": code_verifier})
        except httpx.HTTPError as e:
            raise IdentityRefused(f"cannot reach the token endpoint: {e}") from e
        try:
            token = resp.json() if len(resp.content) <= MAX_RESPONSE_BYTES else {}
        except ValueError:
            token = {}
        if not isinstance(token, dict):
            token = {}
        if resp.status_code != 200:
            raise IdentityRefused(f"the token endpoint refused the code ({resp.status_code} "
                                  f"{token.get('error', '')}: {token.get('error_description', '')})")
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise IdentityRefused("the token endpoint gave no ID token")
        claims = self._verify(id_token, nonce, token.get("access_token"))
        email = claims.get("email")
        return Identity(issuer=str(claims["iss"]), subject=str(claims["sub"]),
                        email=email if isinstance(email, str) else "",
                        email_verified=claims.get("email_verified") is True)

    def _verify(self, id_token: str, nonce: str, access_token: Any) -> dict[str, Any]:
        supported = self.metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in supported if a in ASYMMETRIC]
        if not algorithms:
            raise IdentityRefused(f"the provider signs ID tokens with none of {', '.join(ASYMMETRIC)}")
        try:
            try:
                decoded = jwt.decode(id_token, self._key_set(), algorithms=algorithms)
            except InvalidKeyIdError:
                decoded = jwt.decode(id_token, self._key_set(fresh=True), algorithms=algorithms)
            options: dict[str, Any] = {"iss": {"essential": True, "value": self.issuer},
                                       "aud": {"essential": True, "value": self.client_id}}
            params: dict[str, Any] = {"nonce": nonce, "client_id": self.client_id}
            if isinstance(access_token, str):
                params["access_token"] = access_token
            claims = CodeIDToken(decoded.claims, decoded.header, options, params)
            claims.validate(now=int(time.time()), leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError, KeyError, TypeError) as e:
            raise IdentityRefused(f"the ID token was refused: {type(e).__name__}: {e}") from e
        return dict(claims)
