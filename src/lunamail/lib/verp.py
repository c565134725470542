"""VERP return paths: a signed token in the bounce address that maps a bounce back
to (account, campaign, recipient) without any lookup.

Layout of ``<prefix>+<token>@<domain>``: the token is unpadded, lowercase
base32 (some MTAs lowercase local parts; base32 survives that, base64 does not)
of ``header || account || campaign || recipient || mac``:

* ``header`` -- one byte: format version (high nibble) and flags (bit 0 set: the
  recipient is carried as :func:`recipient_id`, not as the address).
* ``account`` and ``campaign`` -- one length byte whose two high bits say how the
  text is packed (raw UTF-8, lowercase hex as bytes, or a canonical UUID as 16
  bytes; hex ids are the common case and pack to half their length), then the data.
* ``recipient`` -- the rest: the address as UTF-8, or the 10-byte recipient id.
* ``mac`` -- the first 10 bytes of HMAC-SHA256(account key, everything before it),
  so a forged or altered token is rejected (80 bits: unguessable online).

RFC 5321 caps a local part at 64 octets.  The address is carried in full only
when the local part then stays within ``max_local_part``; otherwise the token
carries the short stable :func:`recipient_id` and feedback maps back through it
(compare it to the recipients named in the bounce report, or keep an id -> address
projection).  Long account or campaign ids can still push a token past 64; short
ids keep it under.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from lunamail.lib.tokens import hmac_sha256

__all__ = ["MAC_BYTES", "VerpToken", "decode_return_path", "encode_return_path", "recipient_id"]

MAC_BYTES = 10
_ID_BYTES = 10
_VERSION = 1
_FLAG_ID = 0x01

_KIND_RAW = 0x00
_KIND_HEX = 0x40
_KIND_UUID = 0x80
_LEN_MASK = 0x3F
_KIND_MASK = 0xC0

_HEX_RE = re.compile(r"(?:[0-9a-f]{2})+")
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TOKEN_RE = re.compile(r"[a-z2-7]+")
_PREFIX_RE = re.compile(r"[A-Za-z0-9._]{0,32}")
_SEPARATORS = "+-="
_MAX_ADDRESS = 1024  # anything longer is garbage; refuse before doing work


@dataclass(frozen=True, slots=True)
class VerpToken:
    """What a valid return path says.  ``email_or_id`` is the recipient address, or
    its :func:`recipient_id` when ``is_id`` (the address was too long to carry)."""

    account: str
    campaign: str
    email_or_id: str
    is_id: bool = False

    @property
    def email(self) -> str | None:
        """The recipient address when the token carried it in full."""
        return None if self.is_id else self.email_or_id

    def matches(self, email: str) -> bool:
        """Whether ``email`` is this token's recipient (by address or by id)."""
        if self.is_id:
            return hmac.compare_digest(recipient_id(email), self.email_or_id)
        return email.strip().lower() == self.email_or_id.strip().lower()


def recipient_id(email: str) -> str:
    """Short stable id of an address (16 lowercase base32 chars = 10 bytes of SHA-256
    of the trimmed, lowercased address), for tokens that cannot carry the address."""
    return _b32(_recipient_id_bytes(email))


def _recipient_id_bytes(email: str) -> bytes:
    return hashlib.sha256(email.strip().lower().encode("utf-8")).digest()[:_ID_BYTES]


_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
# 10 bits -> 2 chars: the stdlib base32 is pure Python and was the hot path's main cost.
_PAIRS = tuple(_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024))
_SHIFTS: dict[int, tuple[int, ...]] = {}
# int(x, 32) reads the base32hex alphabet (0-9a-v); map RFC 4648 base32 onto it to decode in C.
_TO_B32HEX = str.maketrans(_ALPHABET, "0123456789abcdefghijklmnopqrstuv")


def _b32(data: bytes) -> str:
    """Unpadded lowercase RFC 4648 base32."""
    size = len(data)
    chars = (8 * size + 4) // 5
    groups = (chars + 1) // 2
    value = int.from_bytes(data, "big") << (10 * groups - 8 * size)
    shifts = _SHIFTS.get(groups)
    if shifts is None:
        shifts = _SHIFTS.setdefault(groups, tuple(range(10 * (groups - 1), -1, -10)))
    return "".join([_PAIRS[(value >> s) & 1023] for s in shifts])[:chars]


def _unb32(token: str) -> bytes | None:
    """Inverse of :func:`_b32` for canonical input only (unused low bits must be zero)."""
    size = 5 * len(token) // 8
    extra = 5 * len(token) - 8 * size
    if extra >= 5:  # impossible length for unpadded base32
        return None
    value = int(token.translate(_TO_B32HEX), 32)
    if value & ((1 << extra) - 1):
        return None
    return (value >> extra).to_bytes(size, "big")


def _pack_field(text: str, what: str) -> bytes:
    if _UUID_RE.fullmatch(text):
        return bytes((_KIND_UUID,)) + uuid.UUID(text).bytes
    if len(text) <= 2 * _LEN_MASK and _HEX_RE.fullmatch(text):
        data = bytes.fromhex(text)
        return bytes((_KIND_HEX | len(data),)) + data
    data = text.encode("utf-8")
    if len(data) > _LEN_MASK:
        raise ValueError(f"{what} is {len(data)} bytes; a return path carries at most {_LEN_MASK}")
    return bytes((_KIND_RAW | len(data),)) + data


@functools.lru_cache(maxsize=64)
def _lead(local_prefix: str, separator: str) -> str:
    if (
        separator not in _SEPARATORS
        or len(separator) != 1
        or not _PREFIX_RE.fullmatch(local_prefix)
    ):
        raise ValueError("local_prefix must be [A-Za-z0-9._]{0,32} and separator one of + - =")
    return local_prefix + separator


@functools.lru_cache(maxsize=1024)
def _pack_head(account: str, campaign: str) -> bytes:
    """Cached: every recipient of a campaign shares it, and it runs per message."""
    return _pack_field(account, "account") + _pack_field(campaign, "campaign")


def _unpack_field(buf: bytes, pos: int) -> tuple[str, int]:
    head = buf[pos]
    kind = head & _KIND_MASK
    pos += 1
    if kind == _KIND_UUID:
        end = pos + 16
        if end > len(buf):
            raise ValueError("truncated")
        return str(uuid.UUID(bytes=buf[pos:end])), end
    end = pos + (head & _LEN_MASK)
    if end > len(buf):
        raise ValueError("truncated")
    if kind == _KIND_HEX:
        return buf[pos:end].hex(), end
    if kind == _KIND_RAW:
        return buf[pos:end].decode("utf-8"), end
    raise ValueError("unknown field kind")


def encode_return_path(
    key: bytes,
    *,
    account: str,
    campaign: str,
    email: str,
    domain: str,
    local_prefix: str = "b",
    separator: str = "+",
    max_local_part: int = 64,
) -> str:
    """The signed bounce address for one recipient of one campaign.

    Raises ``ValueError`` on an empty key, an unusable prefix/separator or an
    account/campaign id too long to carry (> 63 bytes unless hex or UUID).
    """
    if not key:
        raise ValueError("the VERP key must not be empty")
    lead = _lead(local_prefix, separator)
    head = _pack_head(account, campaign)
    raw_email = email.encode("utf-8")
    # Base32 turns n bytes into ceil(8n/5) chars: carry the address only if it fits.
    full_len = 1 + len(head) + len(raw_email) + MAC_BYTES
    if len(lead) + (8 * full_len + 4) // 5 <= max_local_part:
        body = bytes((_VERSION << 4,)) + head + raw_email
    else:
        body = bytes((_VERSION << 4 | _FLAG_ID,)) + head + _recipient_id_bytes(email)
    mac = hmac_sha256(key, body)[:MAC_BYTES]
    return f"{lead}{_b32(body + mac)}@{domain}"


def _token_of(address: str) -> str | None:
    addr = address.strip().strip("<>").strip()
    local = addr.rpartition("@")[0] if "@" in addr else addr
    cut = max(local.rfind(s) for s in _SEPARATORS)
    if cut < 0:
        return None
    token = local[cut + 1 :].lower()
    return token if _TOKEN_RE.fullmatch(token) else None


def decode_return_path(key_for_account: Callable[[str], bytes], address: str) -> VerpToken | None:
    """The token in a (possibly case-folded) bounce address, or ``None`` when the
    address carries none, is garbage, names an unknown account or fails the MAC.
    Never raises: ``key_for_account`` may raise or return ``b""`` for unknown accounts."""
    try:
        if not isinstance(address, str) or len(address) > _MAX_ADDRESS:
            return None
        token = _token_of(address)
        if token is None:
            return None
        buf = _unb32(token)
        if buf is None or len(buf) < 3 + MAC_BYTES:
            return None
        version, flags = buf[0] >> 4, buf[0] & 0x0F
        if version != _VERSION or flags & ~_FLAG_ID:
            return None
        body, mac = buf[:-MAC_BYTES], buf[-MAC_BYTES:]
        account, pos = _unpack_field(body, 1)
        campaign, pos = _unpack_field(body, pos)
        rest = body[pos:]
        key = key_for_account(account)
        if not key or not isinstance(key, bytes | bytearray):
            return None
        if not hmac.compare_digest(hmac_sha256(bytes(key), body)[:MAC_BYTES], mac):
            return None
        if flags & _FLAG_ID:
            if len(rest) != _ID_BYTES:
                return None
            return VerpToken(account, campaign, _b32(rest), is_id=True)
        return VerpToken(account, campaign, rest.decode("utf-8"))
    except Exception:  # a bounce address is untrusted input: any failure means "no token"
        return None
