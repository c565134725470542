"""Campaigns service: drafts, personalisation templates, the campaign state machine,
pre-send checks, scheduling, pause/resume/cancel.  Callers use :mod:`.api` (synchronous)
and the runtime routes messages to :mod:`.handlers`."""
