"""MemoryMailer against the Mailer contract, plus its scripting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lunamail.adapters.mailer.memory import MemoryMailer

try:  # works whether or not tests/contract is a package
    from .mailer_contract import Harness, MailerContract, mails, send_all
except ImportError:
    from mailer_contract import Harness, MailerContract, mails, send_all  # type: ignore[no-redef]


class TestMemoryMailer(MailerContract):
    def harness(self, tmp_path: Path, *, connections: int) -> Iterator[Harness]:
        mailer = MemoryMailer()

        def script(rcpt: str, code: int, text: str) -> None:
            mailer.replies[rcpt.lower()] = (code, text)

        yield Harness(
            mailer=mailer,
            received=lambda: [(m.mail_from, [m.rcpt_to], m.data) for m in mailer.sent],
            script=script,
            drop_once=lambda n: None,
        )
        mailer.close()

    def test_reply_sequences_play_one_per_attempt(self) -> None:
        mailer = MemoryMailer({"x@example.org": [(450, "busy"), (250, "ok")]})
        batch = mails(1, rcpt=lambda i: "x@example.org")
        assert send_all(mailer, batch)[0].code == 450
        assert send_all(mailer, batch)[0].code == 250
        assert send_all(mailer, batch)[0].code == 250
        assert len(mailer.attempts) == 3 and len(mailer.sent) == 2
