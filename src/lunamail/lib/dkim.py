"""DKIM signing (RFC 6376, relaxed/relaxed) with OpenSSL through ``cryptography``.

``dkimpy`` does RSA in pure Python (~130 signs/s); OpenSSL does the same signature
~10x faster, and ed25519 (RFC 8463) ~80x.  Only signing lives here: verification is
the receiver's job, and the tests verify with ``dkimpy``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

__all__ = ["DEFAULT_HEADERS", "OVERSIGNED", "Algorithm", "DkimSigner", "MultiSigner", "generate_keys",
           "signing_domain"]

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]

# Signed when present (From always): the headers a forger would change, including both
# List-Unsubscribe headers so a one-click unsubscribe cannot be redirected.
DEFAULT_HEADERS: tuple[str, ...] = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
    "mime-version",
    "content-type",
)
# Named once more in h= than they occur (RFC 6376 8.15 "oversigning"): a relay or
# forwarder that adds a second From, Subject, unsubscribe header or Feedback-ID
# breaks the signature instead of changing what the reader or the provider sees.
OVERSIGNED: tuple[str, ...] = ("from", "subject", "list-unsubscribe", "list-unsubscribe-post", "feedback-id")

_WSP_RUN = re.compile(rb"[ \t]+")
_WSP_EOL = re.compile(rb"[ \t]+\r\n")
_FIELD_START = re.compile(rb"\r\n(?![ \t])")


def _split(message: bytes) -> tuple[bytes, bytes]:
    """Header block (ending in CRLF) and body."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return message if message.endswith(b"\r\n") else message + b"\r\n", b""
    return message[: end + 2], message[end + 4 :]


def canonical_body(body: bytes) -> bytes:
    """Relaxed body canonicalisation: WSP runs become one SP, no WSP at line ends, no
    empty lines at the end, and a non-empty body ends in CRLF."""
    if not body:
        return b""
    body = _WSP_RUN.sub(b" ", body)
    if b" \r\n" in body:
        body = _WSP_EOL.sub(b"\r\n", body)
    end = len(body)
    if body.endswith(b" "):
        body = body.rstrip(b" ")
        end = len(body)
    while end >= 2 and body[end - 2 : end] == b"\r\n":
        end -= 2
    return body[:end] + b"\r\n" if end else b""


def _fields(header_block: bytes) -> dict[bytes, bytes]:
    """Lower-cased name -> raw field (the last instance wins, as a verifier matches
    ``h=`` names from the bottom up)."""
    out: dict[bytes, bytes] = {}
    for field in _FIELD_START.split(header_block[:-2]):
        name = field.split(b":", 1)[0].strip().lower()
        out[name] = field
    return out


def _canon_header(field: bytes) -> bytes:
    name, _, value = field.partition(b":")
    value = _WSP_RUN.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip().lower() + b":" + value + b"\r\n"


def _fold_b64(prefix: str, value: str, width: int = 72) -> str:
    lines = [value[i : i + width] for i in range(0, len(value), width)]
    return prefix + "\r\n\t".join(lines)


def _fold_names(names: Sequence[str], width: int = 70) -> str:
    lines = [""]
    for n in names:
        if lines[-1] and len(lines[-1]) + len(n) + 1 > width:
            lines.append("")
        lines[-1] += (":" if lines[-1] or len(lines) > 1 else "") + n
    return "\r\n\t".join(lines)


class DkimSigner:
    """Signs with one key.  Build once per key (the PEM parse is the slow part)."""

    def __init__(
        self,
        domain: str,
        selector: str,
        private_key_pem: bytes,
        algorithm: Algorithm = "rsa-sha256",
        headers: Sequence[str] = DEFAULT_HEADERS,
        oversign: Sequence[str] = OVERSIGNED,
    ) -> None:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if algorithm == "rsa-sha256" and not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("rsa-sha256 needs an RSA private key")
        if algorithm == "ed25519-sha256" and not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError("ed25519-sha256 needs an Ed25519 private key")
        if algorithm not in ("rsa-sha256", "ed25519-sha256"):
            raise ValueError(f"unknown DKIM algorithm {algorithm!r}")
        self.domain = domain
        self.selector = selector
        self.algorithm: Algorithm = algorithm
        self._key = key
        self._headers = tuple(h.lower() for h in headers)
        if "from" not in self._headers:
            self._headers = ("from", *self._headers)
        self._oversign = tuple(h.lower() for h in oversign)

    def sign(self, message: bytes, *, timestamp: float | None = None) -> bytes:
        """``message`` (CRLF line endings) with a DKIM-Signature header prepended."""
        head, body = _split(message)
        bh = base64.b64encode(hashlib.sha256(canonical_body(body)).digest()).decode("ascii")
        return self.signature_header(_fields(head), bh, timestamp) + message

    def signature_header(
        self, fields: dict[bytes, bytes], body_hash: str, timestamp: float | None = None
    ) -> bytes:
        """The ``DKIM-Signature`` field (ending in CRLF) for already parsed headers and body
        hash, so several signers can share that work (see ``MultiSigner``)."""
        names = [h for h in self._headers if h.encode("ascii") in fields]
        # The extra names match no further instance: they hash as nothing, but sign the absence.
        signed = names + list(self._oversign)
        t = int(time.time() if timestamp is None else timestamp)
        sig = (
            f"DKIM-Signature: v=1; a={self.algorithm}; c=relaxed/relaxed; d={self.domain};\r\n"
            f"\ts={self.selector}; t={t};\r\n\th={_fold_names(signed)};\r\n"
            + _fold_b64("\tbh=", body_hash)
            + ";\r\n\tb="
        )
        digest = hashlib.sha256()
        for n in names:
            digest.update(_canon_header(fields[n.encode("ascii")]))
        digest.update(_canon_header(sig.encode("ascii"))[:-2])
        if isinstance(self._key, rsa.RSAPrivateKey):
            raw = self._key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        else:
            assert isinstance(self._key, ed25519.Ed25519PrivateKey)
            raw = self._key.sign(digest.digest())  # RFC 8463: Ed25519 over the SHA-256 digest
        return (_fold_b64(sig, base64.b64encode(raw).decode("ascii")) + "\r\n").encode("ascii")


class MultiSigner:
    """Several signatures (e.g. RSA-2048 plus ed25519) sharing one parse and body hash."""

    def __init__(self, signers: Sequence[DkimSigner]) -> None:
        if not signers:
            raise ValueError("MultiSigner needs at least one signer")
        self.signers = tuple(signers)

    def sign(self, message: bytes, *, timestamp: float | None = None) -> bytes:
        head, body = _split(message)
        bh = base64.b64encode(hashlib.sha256(canonical_body(body)).digest()).decode("ascii")
        fields = _fields(head)
        sigs = [s.signature_header(fields, bh, timestamp) for s in self.signers]
        return b"".join(reversed(sigs)) + message


def signing_domain(keys: Iterable[str], from_domain: str) -> str | None:
    """The domain whose DKIM key signs mail From ``from_domain``: its own, else the closest
    parent's (DMARC's relaxed alignment accepts a parent's signature for a subdomain)."""
    have = {k.lower().rstrip(".") for k in keys}
    labels = from_domain.lower().rstrip(".").split(".")
    for i in range(len(labels) - 1):
        candidate = ".".join(labels[i:])
        if candidate in have:
            return candidate
    return None


def generate_keys(algorithm: Algorithm = "rsa-sha256", bits: int = 2048) -> tuple[bytes, str]:
    """A new private key (PKCS#8 PEM) and the DNS TXT value to publish at
    ``<selector>._domainkey.<domain>``."""
    if algorithm == "rsa-sha256":
        rkey = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = rkey.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        pub = rkey.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(pub).decode("ascii")
    if algorithm == "ed25519-sha256":
        ekey = ed25519.Ed25519PrivateKey.generate()
        pem = ekey.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        raw = ekey.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return pem, "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode("ascii")
    raise ValueError(f"unknown DKIM algorithm {algorithm!r}")
