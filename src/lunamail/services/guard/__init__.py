"""Reputation guard service: counts sends, hard bounces and complaints per account and per
campaign, pauses campaigns and locks accounts before a provider does, and scores each
account's reputation.  Callers use :mod:`.api`; the runtime routes events to
:mod:`.handlers`."""
