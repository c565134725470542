"""Accounts service: tenants, API keys, and the account-wide sending lock."""
