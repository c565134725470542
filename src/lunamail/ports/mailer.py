"""Mailer: hands raw RFC 5322 messages to a relay (SMTP or SES) and reports per-recipient results."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

Outcome = Literal["sent", "deferred", "failed"]
StopCheck = Callable[[], bool]
"""Asked by a mailer while it sends: True means start no new SMTP transaction."""


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    mail_from: str  # envelope sender (the VERP return path)
    rcpt_to: str
    data: bytes  # the whole message, CRLF line endings, dot-stuffing NOT applied
    ref: Any = None  # the caller's reference, handed back in the result


@dataclass(frozen=True, slots=True)
class SendResult:
    ref: Any
    rcpt_to: str
    code: int  # SMTP reply code (SES: 250 on success, 5xx/4xx mapped from the error)
    reply: str
    message_id: str | None = None  # the relay's id when it gives one (SES MessageId)

    @property
    def outcome(self) -> Outcome:
        if 200 <= self.code < 300:
            return "sent"
        if 400 <= self.code < 500:
            return "deferred"
        return "failed"

    @property
    def throttled(self) -> bool:
        """421 / 454 (and SES Throttling) mean 'slow down', not 'this recipient is bad'."""
        return self.code in (421, 454)


@runtime_checkable
class Mailer(Protocol):
    def send(
        self,
        mails: Iterable[OutgoingMail],
        on_result: Callable[[SendResult], None],
        stop: StopCheck | None = None,
    ) -> None:
        """Send every mail, calling ``on_result`` once per mail as soon as its reply is known
        (from the calling thread or the mailer's own; callers must be thread-safe).
        Returns when every mail has a result.  Never raises for a per-mail failure: a
        connection error becomes a 4xx result for the mails it affected.

        ``stop`` is asked often (several times a second, also while no reply arrives;
        it must be cheap).  Once it returns True the mailer starts no new transaction:
        the mails already handed to a connection finish and get their result, the others
        get none and are left to the caller (who sends them later, or never)."""
        ...

    def close(self) -> None:
        ...
