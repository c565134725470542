"""VERP return paths: a signed token in the bounce address that maps a bounce back
to (campaign, recipient) of the account whose inbound mail it arrives in.

Layout of ``<prefix>+<token>@<domain>``: the token is unpadded, lowercase base32
(some MTAs lowercase local parts; base32 survives that, base64 does not) of
``header || ref || recipient || mac``:

* ``header`` -- one byte: format version (high nibble) and flags (bit 0 set: the
  recipient is carried as :func:`recipient_id`, not as the address).
* ``ref`` -- the campaign's short reference, :func:`campaign_ref`: 6 bytes of an
  HMAC of the campaign id under the account's key.  Whoever ingests the bounce
  maps it back to the campaign id (a lookup written when the campaign starts, or a
  campaign id named in the returned original, checked against the reference).
* ``recipient`` -- the rest: the address as UTF-8 when it fits, else the 10-byte id.
* ``mac`` -- the first 10 bytes of HMAC-SHA256(account key, account || campaign ||
  everything before it), so a forged or altered token, or one replayed against
  another account or campaign, is rejected (80 bits: unguessable online).

The account is not in the token: a bounce arrives at one account's inbound route,
and the key (and so the MAC) is that account's.  With the default prefix the local
part is at most 2 + 44 = 46 octets for any account and campaign id, well within
RFC 5321's 64.  The address is carried in full only when the local part stays
within ``max_local_part``; otherwise feedback matches the id against the
recipients named in the bounce report.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lunamail.lib.tokens import hmac_sha256

__all__ = [
    "MAC_BYTES",
    "VerpToken",
    "campaign_ref",
    "decode_return_path",
    "encode_return_path",
    "recipient_id",
    "return_path_ref",
]

MAC_BYTES = 10
REF_BYTES = 6
_ID_BYTES = 10
_VERSION = 2
_FLAG_ID = 0x01
_MIN_BYTES = 1 + REF_BYTES + 1 + MAC_BYTES

_TOKEN_RE = re.compile(r"[a-z2-7]+")
_PREFIX_RE = re.compile(r"[A-Za-z0-9._]{0,16}")
_SEPARATORS = "+-="
_MAX_ADDRESS = 1024  # anything longer is garbage; refuse before doing work
_MAX_HINTS = 8


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


def _ref_bytes(key: bytes, campaign: str) -> bytes:
    return hmac_sha256(key, b"verp-ref\x00" + campaign.encode("utf-8"))[:REF_BYTES]


def campaign_ref(key: bytes, campaign: str) -> str:
    """The campaign's short reference in its return paths (10 base32 chars): what the
    feedback side stores to map a bounce back to the campaign id."""
    return _b32(_ref_bytes(key, campaign))


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


def _lead(local_prefix: str, separator: str) -> str:
    if (
        separator not in _SEPARATORS
        or len(separator) != 1
        or not _PREFIX_RE.fullmatch(local_prefix)
    ):
        raise ValueError("local_prefix must be [A-Za-z0-9._]{0,16} and separator one of + - =")
    return local_prefix + separator


def _mac(key: bytes, account: str, campaign: str, body: bytes) -> bytes:
    bound = account.encode("utf-8") + b"\x00" + campaign.encode("utf-8") + b"\x00" + body
    return hmac_sha256(key, bound)[:MAC_BYTES]


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
    """The signed bounce address for one recipient of one campaign.  Its local part is
    at most ``max_local_part`` octets (never more than 64 with the default prefix)
    whatever the ids.  Raises ``ValueError`` on an empty key or an unusable
    prefix/separator."""
    if not key:
        raise ValueError("the VERP key must not be empty")
    lead = _lead(local_prefix, separator)
    ref = _ref_bytes(key, campaign)
    raw_email = email.encode("utf-8")
    # Base32 turns n bytes into ceil(8n/5) chars: carry the address only if it fits.
    full_len = 1 + REF_BYTES + len(raw_email) + MAC_BYTES
    if len(lead) + (8 * full_len + 4) // 5 <= max_local_part:
        body = bytes((_VERSION << 4,)) + ref + raw_email
    else:
        body = bytes((_VERSION << 4 | _FLAG_ID,)) + ref + _recipient_id_bytes(email)
    return f"{lead}{_b32(body + _mac(key, account, campaign, body))}@{domain}"


def _token_of(address: str) -> str | None:
    addr = address.strip().strip("<>").strip()
    local = addr.rpartition("@")[0] if "@" in addr else addr
    cut = max(local.rfind(s) for s in _SEPARATORS)
    if cut < 0:
        return None
    token = local[cut + 1 :].lower()
    return token if _TOKEN_RE.fullmatch(token) else None


def _parse(address: object) -> bytes | None:
    if not isinstance(address, str) or len(address) > _MAX_ADDRESS:
        return None
    token = _token_of(address)
    if token is None:
        return None
    buf = _unb32(token)
    if buf is None or len(buf) < _MIN_BYTES:
        return None
    version, flags = buf[0] >> 4, buf[0] & 0x0F
    if version != _VERSION or flags & ~_FLAG_ID:
        return None
    if flags & _FLAG_ID and len(buf) != 1 + REF_BYTES + _ID_BYTES + MAC_BYTES:
        return None
    return buf


def return_path_ref(address: str) -> str | None:
    """The campaign reference a (well-formed) return path carries, unverified: what
    to look up before :func:`decode_return_path` checks the signature."""
    try:
        buf = _parse(address)
    except Exception:
        return None
    return None if buf is None else _b32(buf[1 : 1 + REF_BYTES])


def decode_return_path(
    key_for_account: Callable[[str], bytes],
    address: str,
    *,
    account: str,
    campaign_for_ref: Callable[[str], str | None] | None = None,
    campaign_hints: Iterable[str | None] = (),
) -> VerpToken | None:
    """The token in a (possibly case-folded) bounce address that arrived for
    ``account``, or ``None`` when the address carries none, is garbage, or no
    candidate campaign -- ``campaign_for_ref(ref)``, then each of ``campaign_hints``
    (e.g. a campaign id named in the returned original) -- matches its reference
    and signature.  Never raises: the callables may raise or return ``b""``/None."""
    try:
        buf = _parse(address)
        if buf is None:
            return None
        key = key_for_account(account)
        if not key or not isinstance(key, bytes | bytearray):
            return None
        key = bytes(key)
        body, mac, ref = buf[:-MAC_BYTES], buf[-MAC_BYTES:], buf[1 : 1 + REF_BYTES]
        candidates: list[str] = []
        if campaign_for_ref is not None:
            try:
                found = campaign_for_ref(_b32(ref))
            except Exception:
                found = None
            if isinstance(found, str) and found:
                candidates.append(found)
        for hint in campaign_hints:
            if isinstance(hint, str) and hint.strip() and len(candidates) < _MAX_HINTS:
                candidates.append(hint.strip())
        for campaign in candidates:
            if not hmac.compare_digest(_ref_bytes(key, campaign), ref):
                continue
            if not hmac.compare_digest(_mac(key, account, campaign, body), mac):
                return None
            rest = body[1 + REF_BYTES :]
            if buf[0] & _FLAG_ID:
                return VerpToken(account, campaign, _b32(rest), is_id=True)
            return VerpToken(account, campaign, rest.decode("utf-8"))
        return None
    except Exception:  # a bounce address is untrusted input: any failure means "no token"
        return None
