"""What the doors call on delivery directly (everything else reaches it by events)."""

from __future__ import annotations

from lunamail.domain.campaigns import CampaignCancelled, CampaignPaused
from lunamail.ports.deps import Deps
from lunamail.services.delivery import control, domains
from lunamail.services.delivery.health import stalled
from lunamail.services.delivery.planning import set_status
from lunamail.services.delivery.retry import finished, retryable_count
from lunamail.services.delivery.testsend import test_result

__all__ = ["add_domain", "apply_stop", "check_domain", "covering_domain", "finished", "get_domain",
           "list_domains", "retryable_count", "stalled", "test_result"]

# Sending domains (see ``domains``): the doors add, check and list them.
add_domain = domains.add
get_domain = domains.get
list_domains = domains.list_domains
check_domain = domains.check
covering_domain = domains.covering_domain


def apply_stop(deps: Deps, event: CampaignPaused | CampaignCancelled) -> float:
    """Write a pause or cancel the campaigns service just accepted into delivery's control
    item now, instead of when the event's turn in the queue comes (every handler slot of
    a busy worker may be running a batch).  Returns how long the caller should wait until
    every running batch has seen it (0 when nothing of the campaign is being sent), so a
    door can answer only once the stop has taken effect.  The event is published as well:
    its handler finds the decision on record."""
    if isinstance(event, CampaignPaused):
        applied = set_status(deps, event.account, event.campaign, "paused", event.at, event.reason)
    else:
        applied = set_status(deps, event.account, event.campaign, "cancelled", event.at)
    return control.SETTLE if applied else 0.0
