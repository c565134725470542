"""Delivery's queue handlers, in one place for the routing table."""

from lunamail.services.delivery.planning import (
    on_campaign_cancelled,
    on_campaign_paused,
    on_campaign_resumed,
    on_campaign_send_started,
    on_guard_tripped,
    on_recipients_selected,
    resume_parked,
)
from lunamail.services.delivery.retry import handle_reopen_failed
from lunamail.services.delivery.sending import send_batch
from lunamail.services.delivery.testsend import send_test

__all__ = [
    "handle_reopen_failed",
    "on_campaign_cancelled",
    "on_campaign_paused",
    "on_campaign_resumed",
    "on_campaign_send_started",
    "on_guard_tripped",
    "on_recipients_selected",
    "resume_parked",
    "send_batch",
    "send_test",
]
