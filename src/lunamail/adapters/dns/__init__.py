"""Resolver adapters: ``dnspython`` (any name server, the system's by default), ``memory`` (tests)."""
