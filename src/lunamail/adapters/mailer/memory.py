"""In-memory mailer for unit tests: records every mail and replies as scripted."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from lunamail.ports.mailer import OutgoingMail, SendResult, StopCheck

Reply = tuple[int, str]
Script = Reply | Sequence[Reply]


class MemoryMailer:
    """``replies`` maps a recipient to one reply, or to a sequence consumed one per
    attempt (the last one repeats), e.g. ``[(450, "busy"), (250, "ok")]`` to test retries.
    ``sent`` holds the mails that got a 2xx, ``attempts`` every mail handed over."""

    def __init__(self, replies: Mapping[str, Script] | None = None) -> None:
        self.replies: dict[str, Script] = {k.lower(): v for k, v in (replies or {}).items()}
        self.sent: list[OutgoingMail] = []
        self.attempts: list[OutgoingMail] = []
        self.closed = False
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def _reply(self, rcpt: str) -> Reply:
        script = self.replies.get(rcpt.lower())
        if script is None:
            return 250, "2.0.0 OK"
        if isinstance(script[0], int):
            return script  # type: ignore[return-value]
        seq: Sequence[Reply] = script  # type: ignore[assignment]
        i = self._seen.get(rcpt.lower(), 0)
        self._seen[rcpt.lower()] = i + 1
        return seq[min(i, len(seq) - 1)]

    def send(
        self,
        mails: Iterable[OutgoingMail],
        on_result: Callable[[SendResult], None],
        stop: StopCheck | None = None,
    ) -> None:
        if self.closed:
            raise RuntimeError("MemoryMailer is closed")
        for mail in mails:
            if stop is not None and stop():
                return
            with self._lock:
                self.attempts.append(mail)
                code, text = self._reply(mail.rcpt_to)
                if 200 <= code < 300:
                    self.sent.append(mail)
            on_result(SendResult(mail.ref, mail.rcpt_to, code, text, f"mem-{len(self.attempts)}"))

    def close(self) -> None:
        self.closed = True
