"""Amazon SNS message verification and SES notification mapping.

SES feedback reaches us as SNS HTTP(S) notifications, i.e. JSON POSTed by
anyone who knows the endpoint.  :class:`SnsVerifier` checks the RSA signature
SNS puts on every message (principle 9) before anything else reads it.  The
trust anchor is the signing certificate's URL: it must be ``https`` on an
``sns.<region>.amazonaws.com`` host, checked *before* anything is fetched, and
the injected ``fetch_cert`` must verify TLS (that is what proves the certificate
came from AWS).  A valid signature proves SNS sent the message, not that it came
from *our* topic -- anyone can create a topic -- so pass ``accept_topic``.

:func:`parse_ses_notification` then maps the SES payload (identity
notifications with ``notificationType`` or configuration-set events with
``eventType``) to plain event dicts.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from lunamail.lib.verp import decode_return_path

from .dsn import bounce_type_for

__all__ = [
    "DEFAULT_TRUSTED_HOSTS",
    "SnsVerificationError",
    "SnsVerifier",
    "canonical_string",
    "parse_ses_notification",
]

DEFAULT_TRUSTED_HOSTS = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"

# Field order of the string to sign, per the SNS documentation ("Verifying the
# signatures of Amazon SNS messages"): keys sorted by byte order, each as
# "Key\nValue\n"; Subject only when the notification has one.
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_FIELDS_BY_TYPE = {
    "Notification": _NOTIFICATION_FIELDS,
    "SubscriptionConfirmation": _CONFIRMATION_FIELDS,
    "UnsubscribeConfirmation": _CONFIRMATION_FIELDS,
}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_MAX_CACHED_CERTS = 32


class SnsVerificationError(Exception):
    """The payload is not a genuine SNS message; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def canonical_string(payload: Mapping[str, Any]) -> bytes:
    """The bytes SNS signed for this message (raises SnsVerificationError if it lacks
    a required field)."""
    msg_type = payload.get("Type")
    fields = _FIELDS_BY_TYPE.get(msg_type) if isinstance(msg_type, str) else None
    if fields is None:
        raise SnsVerificationError(f"unsupported message Type {msg_type!r}")
    out: list[str] = []
    for name in fields:
        value = payload.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise SnsVerificationError(f"field {name!r} missing or not a string")
        out.append(f"{name}\n{value}\n")
    return "".join(out).encode("utf-8")


class SnsVerifier:
    """Checks SNS signatures.  Certificates are cached by URL (validity is re-checked
    on every use), so steady traffic fetches each AWS signing certificate once."""

    def __init__(
        self,
        fetch_cert: Callable[[str], bytes],
        *,
        trusted_hosts_pattern: str = DEFAULT_TRUSTED_HOSTS,
        now: Callable[[], float] | None = None,
        accept_topic: Callable[[str], bool] | None = None,
        max_age_seconds: float | None = None,
    ) -> None:
        self._fetch = fetch_cert
        self._hosts = re.compile(trusted_hosts_pattern)
        self._now = now or time.time
        self._accept_topic = accept_topic
        self._max_age = max_age_seconds
        self._certs: dict[str, x509.Certificate] = {}

    def check_cert_url(self, url: object) -> str:
        """The URL if it may be fetched at all; checked before any network access."""
        if not isinstance(url, str) or len(url) > 2048:
            raise SnsVerificationError("SigningCertURL missing")
        try:
            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port
        except ValueError as exc:
            raise SnsVerificationError(f"SigningCertURL unparsable: {exc}") from None
        if parts.scheme != "https":
            raise SnsVerificationError("SigningCertURL is not https")
        if parts.username is not None or parts.password is not None or port not in (None, 443):
            raise SnsVerificationError("SigningCertURL carries credentials or a port")
        if not self._hosts.fullmatch(host):
            raise SnsVerificationError(f"SigningCertURL host {host!r} is not trusted")
        if not parts.path.endswith(".pem") or parts.query or parts.fragment:
            raise SnsVerificationError("SigningCertURL is not a .pem path")
        return url

    def _certificate(self, url: str) -> x509.Certificate:
        cert = self._certs.get(url)
        if cert is None:
            try:
                pem = self._fetch(url)
                cert = x509.load_pem_x509_certificate(pem)
            except SnsVerificationError:
                raise
            except Exception as exc:
                raise SnsVerificationError(f"signing certificate unusable: {exc}") from None
            if len(self._certs) >= _MAX_CACHED_CERTS:
                self._certs.clear()
            self._certs[url] = cert
        now = self._now()
        if not cert.not_valid_before_utc.timestamp() <= now <= cert.not_valid_after_utc.timestamp():
            raise SnsVerificationError("signing certificate is expired or not yet valid")
        return cert

    def verify(self, payload: dict[str, Any]) -> None:
        """Return quietly when ``payload`` is a genuine SNS message, else raise
        :class:`SnsVerificationError`."""
        if not isinstance(payload, dict):
            raise SnsVerificationError("payload is not a JSON object")
        version = payload.get("SignatureVersion")
        algorithm = _HASHES.get(version) if isinstance(version, str) else None
        if algorithm is None:
            raise SnsVerificationError(f"unsupported SignatureVersion {version!r}")
        signed = canonical_string(payload)
        url = self.check_cert_url(payload.get("SigningCertURL"))
        topic = payload.get("TopicArn")
        if self._accept_topic is not None and not self._accept_topic(str(topic)):
            raise SnsVerificationError(f"topic {topic!r} is not accepted")
        try:
            signature = base64.b64decode(str(payload.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError):
            raise SnsVerificationError("Signature is not base64") from None
        if not signature:
            raise SnsVerificationError("Signature missing")
        key = self._certificate(url).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsVerificationError("signing certificate does not hold an RSA key")
        try:
            key.verify(signature, signed, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SnsVerificationError("signature does not match the message") from None
        if self._max_age is not None:
            sent = _epoch(payload.get("Timestamp"))
            if sent is None or abs(self._now() - sent) > self._max_age:
                raise SnsVerificationError("Timestamp outside the accepted window")


# --------------------------------------------------------------------------- SES mapping


def _epoch(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def _first_tag(tags: Mapping[str, Any], names: Iterable[str]) -> str:
    for name in names:
        value = tags.get(name)
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, str) and value:
            return value
    return ""


def _header_map(mail: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    headers = mail.get("headers")
    if isinstance(headers, list):
        for item in headers:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                out.setdefault(item["name"].lower(), str(item.get("value", "")))
    return out


def _strip_addr(value: object) -> str:
    text = str(value or "").strip()
    m = re.search(r"<([^<>]+)>\s*$", text)
    return (m.group(1) if m else text).strip()


def _resolve(
    mail: Mapping[str, Any],
    account_tags: Iterable[str],
    campaign_tags: Iterable[str],
    key_for_account: Callable[[str], bytes] | None,
    default_account: str,
    campaign_for_ref: Callable[[str], str | None] | None = None,
) -> tuple[str, str, str | None]:
    """(account, campaign, verp recipient) from tags, then the VERP return path, then
    the X-Lunamail-* headers."""
    tags = mail.get("tags")
    tags = tags if isinstance(tags, dict) else {}
    account = _first_tag(tags, account_tags)
    campaign = _first_tag(tags, campaign_tags)
    verp_email: str | None = None
    headers = _header_map(mail)
    account = account or headers.get("x-lunamail-account", "") or default_account
    if key_for_account is not None and account and not campaign:
        hints = (headers.get("x-lunamail-campaign"),)
        for candidate in (headers.get("return-path"), mail.get("source")):
            token = decode_return_path(key_for_account, _strip_addr(candidate), account=account,
                                       campaign_for_ref=campaign_for_ref, campaign_hints=hints)
            if token is not None:
                campaign = token.campaign
                verp_email = token.email
                break
    campaign = campaign or headers.get("x-lunamail-campaign", "")
    return account, campaign, verp_email


_SES_SENDER_SUBTYPES = frozenset({"ContentRejected", "AttachmentRejected", "MessageTooLarge"})
_SES_HARD_SUBTYPES = frozenset({"Suppressed", "OnAccountSuppressionList", "NoEmail"})


def _ses_verdict(permanent: bool, sub_type: str, status: object, diagnostic: object) -> str:
    """SES's Permanent is not always the address's fault: a permanent 5.7.x or a
    rejected content is the sender's (never suppress); the diagnostic decides."""
    if sub_type in _SES_SENDER_SUBTYPES:
        return "sender"
    st = status if isinstance(status, str) else None
    diag = diagnostic if isinstance(diagnostic, str) else None
    if permanent:
        if sub_type in _SES_HARD_SUBTYPES or not (st or diag):
            return "hard"
        return bounce_type_for(st, diag)
    return "sender" if bounce_type_for(st, diag) == "sender" else "soft"


def parse_ses_notification(
    message: Mapping[str, Any] | str | bytes,
    *,
    account_tags: Iterable[str] = ("lm_account", "lunamail:account"),
    campaign_tags: Iterable[str] = ("lm_campaign", "lunamail:campaign"),
    key_for_account: Callable[[str], bytes] | None = None,
    default_account: str = "",
    campaign_for_ref: Callable[[str], str | None] | None = None,
) -> list[dict[str, Any]]:
    """Plain event dicts for one SES notification (the SNS ``Message``, parsed or not;
    a whole SNS envelope is unwrapped too).

    Every dict has ``type`` (``bounce``, ``complaint``, ``delivery``,
    ``delivery_delay``, ``reject``, ``open``, ``click``; other SES event types give
    ``[]``), ``account``, ``campaign`` (``""`` when unknown), ``email``, ``at``
    (epoch seconds), ``source="ses"`` and ``message_id`` (SES's), plus per type:
    bounce ``bounce_type`` (Permanent -> hard unless the status and diagnostic say the
    sender was refused, which is ``sender``; Transient/Undetermined -> soft or sender),
    ``status``, ``diagnostic``, ``sub_type``; complaint ``feedback_type``,
    ``sub_type``; delivery_delay ``status``, ``diagnostic``, ``delay_type``; reject
    ``reason``; open/click ``ip``, ``user_agent`` (click: ``link``, ``link_tags``).

    The account comes from ``mail.tags`` (first of ``account_tags``; SES tag values
    are lists), else the ``X-Lunamail-Account`` header in ``mail.headers``, else
    ``default_account``.  The campaign comes from the tags, else the VERP Return-Path
    header or ``mail.source`` when ``key_for_account`` is given (authenticated; its
    reference is resolved by ``campaign_for_ref`` or checked against the
    ``X-Lunamail-Campaign`` header), else that header, else ``""``.  Raises ``ValueError`` on a payload that is
    not a SES notification object.
    """
    doc: Any = message
    if isinstance(doc, str | bytes):
        doc = orjson.loads(doc)
    if (
        isinstance(doc, dict)
        and doc.get("Type") == "Notification"
        and isinstance(doc.get("Message"), str)
    ):
        doc = orjson.loads(doc["Message"])
    if not isinstance(doc, dict):
        raise ValueError("SES notification must be a JSON object")
    kind = str(doc.get("eventType") or doc.get("notificationType") or "")
    mail_obj = doc.get("mail")
    mail: dict[str, Any] = mail_obj if isinstance(mail_obj, dict) else {}
    account, campaign, verp_email = _resolve(
        mail, account_tags, campaign_tags, key_for_account, default_account, campaign_for_ref
    )
    mail_at = _epoch(mail.get("timestamp")) or 0.0
    destination = [d for d in mail.get("destination") or [] if isinstance(d, str)]
    single = destination[0] if len(destination) == 1 else (verp_email or "")

    def base(kind_name: str, email: str, detail: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "type": kind_name,
            "account": account,
            "campaign": campaign,
            "email": _strip_addr(email),
            "at": _epoch(detail.get("timestamp")) or mail_at,
            "source": "ses",
            "message_id": mail.get("messageId"),
        }

    def section(name: str) -> dict[str, Any]:
        value = doc.get(name)
        return value if isinstance(value, dict) else {}

    events: list[dict[str, Any]] = []
    if kind == "Bounce":
        detail = section("bounce")
        hard = detail.get("bounceType") == "Permanent"
        for rcpt in detail.get("bouncedRecipients") or []:
            if isinstance(rcpt, dict):
                ev = base("bounce", rcpt.get("emailAddress", ""), detail)
                ev.update(
                    bounce_type=_ses_verdict(hard, str(detail.get("bounceSubType") or ""),
                                             rcpt.get("status"), rcpt.get("diagnosticCode")),
                    status=rcpt.get("status"),
                    diagnostic=rcpt.get("diagnosticCode"),
                    sub_type=detail.get("bounceSubType"),
                )
                events.append(ev)
    elif kind == "Complaint":
        detail = section("complaint")
        for rcpt in detail.get("complainedRecipients") or []:
            if isinstance(rcpt, dict):
                ev = base("complaint", rcpt.get("emailAddress", ""), detail)
                ev.update(
                    feedback_type=detail.get("complaintFeedbackType") or "abuse",
                    sub_type=detail.get("complaintSubType"),
                )
                events.append(ev)
    elif kind == "Delivery":
        detail = section("delivery")
        for rcpt in detail.get("recipients") or destination:
            events.append(base("delivery", str(rcpt), detail))
    elif kind == "DeliveryDelay":
        detail = section("deliveryDelay")
        for rcpt in detail.get("delayedRecipients") or []:
            if isinstance(rcpt, dict):
                ev = base("delivery_delay", rcpt.get("emailAddress", ""), detail)
                ev.update(
                    status=rcpt.get("status"),
                    diagnostic=rcpt.get("diagnosticCode"),
                    delay_type=detail.get("delayType"),
                )
                events.append(ev)
    elif kind == "Reject":
        detail = section("reject")
        for rcpt in destination:
            ev = base("reject", rcpt, detail)
            ev["reason"] = detail.get("reason")
            events.append(ev)
    elif kind in ("Open", "Click"):
        detail = section(kind.lower())
        ev = base(kind.lower(), single, detail)
        ev.update(ip=detail.get("ipAddress"), user_agent=detail.get("userAgent"))
        if kind == "Click":
            ev.update(link=detail.get("link"), link_tags=detail.get("linkTags") or {})
        events.append(ev)
    return events
