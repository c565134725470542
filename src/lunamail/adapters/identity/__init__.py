"""Adapters of the IdentityProvider port (OpenID Connect)."""
