"""The one routing table: which handler functions consume which message.

The model is queue-per-handler (SNS -> SQS fan-out): publishing a message
enqueues one entry on the queue of every handler that consumes it, so a slow
or failing consumer never holds back the others, and each retries on its own.
The local runtime wires itself from this table and the AWS template is
checked against it, so this is the only place a subscription is declared.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lunamail.domain.messages import Later, Message
from lunamail.ports.deps import Deps

Handler = Callable[[Any, Deps], Sequence[Message | Later] | None]
"""``handler(message, deps)`` returns the messages it emits (or None); a ``Later``
wrapper delays one."""

_SERVICES_PREFIX = "lunamail.services."

def _routes() -> dict[type[Message], tuple[Handler, ...]]:
    """The table (a function so that importing the runtime does not import every
    service before the message registry is complete)."""
    from lunamail.domain import accounts as acc
    from lunamail.domain import audience as aud
    from lunamail.domain import campaigns as camp
    from lunamail.domain import delivery as dlv
    from lunamail.domain import feedback as fb
    from lunamail.domain import guard as grd
    from lunamail.domain import tracking as trk
    from lunamail.services.accounts import handlers as accounts
    from lunamail.services.audience import handlers as audience
    from lunamail.services.audience import reactions as audience_reactions
    from lunamail.services.campaigns import handlers as campaigns
    from lunamail.services.campaigns import reactions as campaign_reactions
    from lunamail.services.delivery import handlers as delivery
    from lunamail.services.feedback import handlers as feedback
    from lunamail.services.feedback import policy as feedback_policy
    from lunamail.services.guard import handlers as guard
    from lunamail.services.reports import handlers as reports
    from lunamail.services.tracking import handlers as tracking

    return {
        # audience
        aud.ImportChunk: (audience.import_chunk,),
        aud.PurgeList: (audience.purge_list,),
        dlv.SelectRecipients: (audience.select_recipients,),
        # campaigns
        camp.SendCampaign: (campaigns.handle_send_campaign,),
        camp.CampaignSendStarted: (
            delivery.on_campaign_send_started, reports.on_send_started, tracking.on_campaign_send_started,
            feedback.on_campaign_send_started,
        ),
        camp.SendTest: (delivery.send_test,),
        camp.CampaignPaused: (delivery.on_campaign_paused, reports.on_paused),
        camp.CampaignResumed: (delivery.on_campaign_resumed, reports.on_resumed, guard.on_campaign_resumed),
        camp.CampaignCancelled: (delivery.on_campaign_cancelled, reports.on_cancelled),
        # one queue each for the retry's start and its steps (the stack's resource budget)
        camp.CampaignRetryStarted: (delivery.handle_reopen_failed, reports.on_resumed),
        # delivery
        dlv.RecipientsSelected: (delivery.on_recipients_selected,),
        dlv.SendBatch: (delivery.send_batch,),
        dlv.ResumeParked: (delivery.resume_parked,),
        dlv.ReopenFailed: (delivery.handle_reopen_failed,),
        dlv.RecipientsPlanned: (reports.on_recipients_planned,),
        dlv.PlanningCompleted: (reports.on_planning_completed,),
        dlv.BatchSent: (reports.on_batch_sent, guard.on_batch_sent),
        dlv.CampaignDelivered: (campaigns.on_campaign_delivered, reports.on_delivered),
        # feedback: raw reports in, bounces and complaints out to the lists and the guard
        fb.IngestRaw: (feedback.ingest_raw,),
        fb.Bounced: (
            guard.on_bounced, feedback_policy.count_soft_bounce, audience_reactions.on_bounced,
            reports.on_bounced,
        ),
        fb.SoftBounceLimitReached: (audience_reactions.on_soft_bounce_limit,),
        fb.Complained: (guard.on_complained, audience_reactions.on_complained, reports.on_complained),
        fb.Delivered: (reports.on_feedback_delivered,),
        # tracking
        trk.Unsubscribed: (audience_reactions.on_unsubscribed, reports.on_unsubscribed),
        trk.Opened: (reports.on_opened,),
        trk.Clicked: (reports.on_clicked,),
        # guard and accounts
        grd.CampaignGuardTripped: (campaign_reactions.on_campaign_guard_tripped, delivery.on_guard_tripped),
        grd.PauseAccountCampaigns: (campaign_reactions.handle_pause_account_campaigns,),
        acc.LockAccountSending: (accounts.handle_lock_account_sending,),
        acc.AccountSendingLocked: (campaign_reactions.on_account_sending_locked,),
        acc.AccountSendingUnlocked: (
            guard.on_account_sending_unlocked, campaign_reactions.on_account_sending_unlocked,
        ),

    }


class RoutingError(ValueError):
    """The routing table is inconsistent, or a queue/router name is unknown."""


def queue_name(handler: Handler) -> str:
    """Stable queue name of a handler: ``<service>.<function>`` for
    ``lunamail.services.<service>.<...>.<function>``, else ``<module>.<function>``.

    Derived from where the code lives, not from an object id, so every process
    (and the deploy template) computes the same name.
    """
    module = getattr(handler, "__module__", None)
    name = getattr(handler, "__qualname__", None) or getattr(handler, "__name__", None)
    if not module or not name or "<" in name:
        raise RoutingError(f"handler {handler!r} needs a module-level name to get a queue")
    if module.startswith(_SERVICES_PREFIX):
        service = module[len(_SERVICES_PREFIX) :].split(".", 1)[0]
        return f"{service}.{name}"
    return f"{module}.{name}"


class Router:
    """Answers "who consumes this message" and "which handler owns this queue"."""

    def __init__(self, routes: Mapping[type[Message], Iterable[Handler]]) -> None:
        self._routes: dict[type[Message], tuple[Handler, ...]] = {}
        self._by_queue: dict[str, Handler] = {}
        self._consumes: dict[str, list[str]] = {}
        for cls, handlers in routes.items():
            if not cls.NAME:
                raise RoutingError(f"{cls.__name__} is not a registered message (no NAME)")
            unique = tuple(dict.fromkeys(handlers))
            self._routes[cls] = unique
            for h in unique:
                q = queue_name(h)
                other = self._by_queue.setdefault(q, h)
                if other is not h:
                    raise RoutingError(f"two handlers map to queue {q!r}: {other!r} and {h!r}")
                self._consumes.setdefault(q, []).append(cls.NAME)

    def handlers_for(self, message: Message) -> tuple[Handler, ...]:
        """Consumers of this exact message type (empty when nobody listens)."""
        return self._routes.get(type(message), ())

    @staticmethod
    def queue_name(handler: Handler) -> str:
        return queue_name(handler)

    def handler_for_queue(self, name: str) -> Handler:
        try:
            return self._by_queue[name]
        except KeyError:
            raise RoutingError(f"no handler is routed to queue {name!r}") from None

    def queues(self) -> list[str]:
        """Every routed queue, sorted (stable across processes)."""
        return sorted(self._by_queue)

    def subscriptions(self) -> dict[str, list[str]]:
        """Queue name -> the message names it receives (for deploy templates and docs)."""
        return {q: sorted(names) for q, names in sorted(self._consumes.items())}

    def __repr__(self) -> str:
        return f"Router({len(self._routes)} messages, {len(self._by_queue)} queues)"


def default_router() -> Router:
    """The Router of the real table."""
    return Router(_routes())


def load_router(spec: str) -> Router:
    """Import ``"package.module:attr"`` where ``attr`` is a Router, a routes mapping, or a
    zero-argument callable returning either.  For tests and plugins that run the
    standard worker over their own handlers."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise RoutingError(f"router spec must look like 'package.module:attr', not {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise RoutingError(f"cannot import router module {module_name!r}: {e}") from e
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise RoutingError(f"{module_name!r} has no attribute {attr!r}") from None
    if callable(obj) and not isinstance(obj, Router):
        obj = obj()
    if isinstance(obj, Router):
        return obj
    if isinstance(obj, Mapping):
        return Router(obj)
    raise RoutingError(f"{spec!r} is neither a Router nor a routes mapping")
