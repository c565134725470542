"""SesMailer: the Mailer port on Amazon SES ``SendRawEmail``.

One API call per recipient (``Destinations=[rcpt_to]``), so every mail gets
its own result and SES MessageId, as the delivery service expects.
``Source`` is the envelope sender (the VERP return path): with feedback
forwarding SES sends bounces there, and it takes precedence over any
Return-Path header.  Calls run on ``concurrency`` threads sharing one boto3
client (clients are thread-safe); ``on_result`` is called from the caller's
thread.

SES answers with errors, not SMTP replies; they are mapped to SMTP-like codes
so the delivery rules (4xx defer, 5xx final, 421/454 slow down: never counted
against the recipient) apply as they do over SMTP:

=====================================================  ====  =========
SES error                                              code  outcome
=====================================================  ====  =========
Throttling (incl. "Maximum sending rate exceeded",
  daily quota)                                         454   deferred, throttled
MessageRejected                                        554   failed
MailFromDomainNotVerifiedException                     550   failed
InvalidParameterValue (e.g. a malformed address)       553   failed
AccountSendingPaused / ConfigurationSetSendingPaused   421   deferred, throttled
any other 5xx service error, timeouts, network errors  451   deferred
=====================================================  ====  =========

Event publishing (bounces, complaints, opens...) maps back to account and
campaign through the ``lm_account``/``lm_campaign`` message tags, taken from
the message's ``X-Lunamail-Account``/``X-Lunamail-Campaign`` headers (or
``default_tags``); see ``services/feedback/sns.py``.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lunamail.lib.pacing import chunk_size
from lunamail.ports.mailer import OutgoingMail, SendResult, StopCheck
from lunamail.ports.pacer import Pacer

TAG_HEADERS = {b"x-lunamail-account": "lm_account", b"x-lunamail-campaign": "lm_campaign"}
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what SES accepts as a tag value
_HEADER_SCAN = 64 * 1024

_THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException"}
_PAUSED = {
    "AccountSendingPausedException",
    "ConfigurationSetSendingPausedException",
}
_PERMANENT = {
    "MessageRejected": (554, "5.7.1"),
    "MailFromDomainNotVerifiedException": (550, "5.7.1"),
    "MailFromDomainNotVerified": (550, "5.7.1"),
    "InvalidParameterValue": (553, "5.1.3"),
}


def tags_from_headers(data: bytes) -> dict[str, str]:
    """``lm_account``/``lm_campaign`` from the X-Lunamail-* headers of a raw message
    (header block only; folded values joined).  Values SES would refuse are left out:
    the VERP return path still maps those mails back."""
    head = data[:_HEADER_SCAN].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    out: dict[str, str] = {}
    current: str | None = None
    for line in head.split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                out[current] += line.strip().decode("ascii", "replace")
            continue
        name, sep, value = line.partition(b":")
        current = TAG_HEADERS.get(name.strip().lower()) if sep else None
        if current is not None and current not in out:
            out[current] = value.strip().decode("ascii", "replace")
        elif current is not None:
            current = None  # keep the first occurrence only
    return {k: v for k, v in out.items() if _TAG_VALUE.match(v)}


def result_for_error(mail: OutgoingMail, exc: Exception) -> SendResult:
    """The SMTP-like result for a failed SendRawEmail."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code_name = str(err.get("Code", ""))
        text = str(err.get("Message", "")) or code_name
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code_name in _THROTTLED or "rate exceeded" in text.lower():
            return SendResult(mail.ref, mail.rcpt_to, 454, f"4.7.0 SES {code_name}: {text}")
        if code_name in _PERMANENT:
            code, enhanced = _PERMANENT[code_name]
            return SendResult(mail.ref, mail.rcpt_to, code, f"{enhanced} SES {code_name}: {text}")
        if code_name in _PAUSED:  # the sender must wait; the recipient is fine
            return SendResult(mail.ref, mail.rcpt_to, 421, f"4.3.2 SES {code_name}: {text}")
        if status >= 500 or status == 0:
            return SendResult(mail.ref, mail.rcpt_to, 451, f"4.3.0 SES {code_name}: {text}")
        # Any other 4xx API error is ours (bad request, missing permission, unknown
        # configuration set): defer, so fixing the setup does not lose the recipient.
        return SendResult(mail.ref, mail.rcpt_to, 451, f"4.3.5 SES {code_name}: {text}")
    if isinstance(exc, BotoCoreError | OSError):
        return SendResult(mail.ref, mail.rcpt_to, 451, f"4.4.2 SES unreachable: {exc}")
    return SendResult(mail.ref, mail.rcpt_to, 451, f"4.3.0 {type(exc).__name__}: {exc}")


class SesMailer:
    """``Mailer`` over SES SendRawEmail with ``concurrency`` calls in flight.

    ``configuration_set`` names the SES configuration set whose event destinations
    publish bounces, complaints, opens and clicks.  ``pacer`` (optional) spaces the
    calls and hears throttling, as for SMTP; SES enforces its own rate anyway.
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client: Any = None,
        configuration_set: str | None = None,
        concurrency: int = 8,
        pacer: Pacer | None = None,
        default_tags: Mapping[str, str] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.configuration_set = configuration_set
        self.concurrency = concurrency
        self.pacer = pacer
        self.default_tags = dict(default_tags or {})
        self._own_client = client is None
        self._client = client or boto3.client(
            "ses",
            endpoint_url=endpoint_url,
            region_name=region,
            # A few SDK retries ride out dropped connections and 5xx blips; throttling
            # is mostly handed back (454) so the delivery pacing can react.
            config=Config(
                retries={"mode": "standard", "max_attempts": 3},
                max_pool_connections=max(10, concurrency),
            ),
        )
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="ses-mailer")
        self._closed = False
        self._pace_lock = threading.Lock()
        self._slots: deque[float] = deque()  # reserved send times not used yet
        self._slot_spacing = 0.0

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SesMailer:
        """``ses://?region=eu-west-1&configuration_set=news&endpoint_url=http://...``
        (the form ``LUNAMAIL_SMTP_URL`` may take to choose SES)."""
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(url)
        if parts.scheme.lower() != "ses":
            raise ValueError(f"SES URL {url!r}: scheme must be ses")
        opts = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(opts) - {"region", "configuration_set", "endpoint_url", "concurrency"}
        if unknown:
            raise ValueError(f"SES URL: unknown option(s) {', '.join(sorted(unknown))}")
        # The URL is the more specific setting: its options win over the keyword defaults.
        for key in ("region", "configuration_set", "endpoint_url"):
            if key in opts:
                kwargs[key] = opts[key]
        if "concurrency" in opts:
            kwargs["concurrency"] = int(opts["concurrency"])
        return cls(**kwargs)

    # ------------------------------------------------------------ sending

    def send(
        self,
        mails: Iterable[OutgoingMail],
        on_result: Callable[[SendResult], None],
        stop: StopCheck | None = None,
    ) -> None:
        """At most ``2 * concurrency`` mails are pending at once, so the caller's iterator
        (rendering) stays ahead of the calls without loading the whole batch (and a
        ``stop`` leaves at most that many calls to finish)."""
        if self._closed:
            raise RuntimeError("SesMailer is closed")
        it: Iterator[OutgoingMail] = iter(mails)
        pending: set[Future[SendResult]] = set()
        limit = 2 * self.concurrency
        error: BaseException | None = None
        exhausted = False
        while True:
            if not exhausted and stop is not None and stop():
                exhausted = True
            if not exhausted and error is None and len(pending) < limit:
                try:
                    chunk = list(islice(it, limit - len(pending)))
                except BaseException as e:  # the caller's iterator failed: finish what is out
                    error, chunk = e, []
                pending.update(self._pool.submit(self._send_one, m) for m in chunk)
                exhausted = exhausted or not chunk
            if not pending:
                break
            done, pending = wait(pending, timeout=None if stop is None else 0.1, return_when=FIRST_COMPLETED)
            for fut in done:
                result = fut.result()
                if error is None:
                    try:
                        on_result(result)
                    except BaseException as e:  # keep draining: those mails were sent
                        error = e
        if error is not None:
            raise error

    def _request(self, mail: OutgoingMail) -> dict[str, Any]:
        tags = {**self.default_tags, **tags_from_headers(mail.data)}
        request: dict[str, Any] = {
            "Source": mail.mail_from,
            "Destinations": [mail.rcpt_to],
            "RawMessage": {"Data": mail.data},
        }
        if tags:
            request["Tags"] = [{"Name": k, "Value": v} for k, v in sorted(tags.items())]
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        return request

    def _pace(self) -> None:
        """Wait for this call's slot.  Slots are reserved a chunk at a time (about a quarter
        second's worth: one round trip to a shared pacer per chunk, not per mail); a slot
        we are late for by more than one spacing is dropped, never used in a burst."""
        if self.pacer is None:
            return
        with self._pace_lock:
            now = time.time()
            while self._slots and self._slot_spacing > 0 and self._slots[0] < now - self._slot_spacing:
                self._slots.popleft()
            if not self._slots:
                n = chunk_size(self.pacer.current_rate(), default=2 * self.concurrency)
                start, self._slot_spacing = self.pacer.reserve(n)
                self._slots.extend(start + i * self._slot_spacing for i in range(n))
            at = self._slots.popleft()
        wait_s = at - time.time()
        if wait_s > 0:
            time.sleep(wait_s)

    def _send_one(self, mail: OutgoingMail) -> SendResult:
        """Never raises: every outcome is a SendResult."""
        try:
            self._pace()
            resp = self._client.send_raw_email(**self._request(mail))
        except Exception as exc:
            result = result_for_error(mail, exc)
            if result.throttled and self.pacer is not None:
                with contextlib.suppress(Exception):
                    self.pacer.throttled()
            return result
        message_id = str(resp.get("MessageId") or "") or None
        return SendResult(mail.ref, mail.rcpt_to, 250, f"2.0.0 Ok {message_id or ''}".rstrip(), message_id)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        if self._own_client:
            close = getattr(self._client, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> SesMailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SesMailer(configuration_set={self.configuration_set!r}, concurrency={self.concurrency})"
