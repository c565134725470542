"""Secrets out of text: the password of a URL's ``user:password@`` and API keys.

Applied wherever text about a failure can surface (CLI errors, logs, dead letters), so an
SMTP URL in an exception (``smtp+starttls://user:secret@host``) or an API key quoted back
never reaches a terminal, a log file or the dead-letter table in the clear.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "install_log_redaction", "redact"]

MASK = "***"
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s'\"]*):[^@\s'\"/]*@")
_API_KEY = re.compile(r"\blm_[A-Za-z0-9_\-]{8,}")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s'\",]+")
_PASSWORD_FIELD = re.compile(r"(?i)(password|passwd|secret|api[_-]?key)(['\"]?\s*[:=]\s*['\"]?)[^\s'\",&]+")


def redact(text: str) -> str:
    """``text`` with URL passwords, API keys, bearer tokens and ``password=...`` values
    replaced by ``***``."""
    if ":" not in text and "lm_" not in text and "=" not in text:
        return text
    text = _URL_PASSWORD.sub(rf"\1:{MASK}@", text)
    text = _API_KEY.sub(f"lm_{MASK}", text)
    text = _BEARER.sub(rf"\1{MASK}", text)
    return _PASSWORD_FIELD.sub(rf"\1\2{MASK}", text)


class RedactingFilter(logging.Filter):
    """A log filter that redacts the formatted message (and a traceback's text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text = str(exc)
            if redact(text) != text:  # format the traceback now, redacted
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Put a :class:`RedactingFilter` on every handler of ``logger`` (the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
