"""Tracking: opens, clicks, unsubscribes and the web view, behind signed links.

The service owns the items under ``A#{account}#T#{campaign}`` (its own copy of
each campaign's content, for the web view) and emits ``domain.tracking``
events; audience and reports react to them.
"""
