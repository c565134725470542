"""One identity per mailbox: the rule for comparing email addresses, in one place.

RFC 5321 lets a receiving server treat the local part (before the ``@``) as case
sensitive, but no large mailbox provider does, and people type their address in
whatever case they like (``Jane@Example.com`` in one form, ``jane@example.com`` in
another).  Lunamail therefore compares addresses case-insensitively, local part and
domain alike:

* **identity** — the :func:`mailbox_key` of an address decides whether two addresses
  are one subscriber, one suppression, one opt-out, one history and one send record.
  It is the address, already normalised (domain lower-cased, IDN as punycode, local
  part ASCII; see ``lunamail.lib.emails``), with the local part lower-cased too.
* **display and envelope** — the address *as first written* is kept on the item
  (``email``) and is what a message is sent to and what every listing shows.  A later
  write in another case changes nothing about it.

Every store key that names an address is built from :func:`mailbox_key`; nothing
else compares addresses.  Existing data written before this rule is brought in line
by ``lunamail migrate`` (it merges case duplicates).
"""

from __future__ import annotations

__all__ = ["mailbox_key", "same_mailbox"]


def mailbox_key(email: str) -> str:
    """The identity of a (normalised) address: case-folded as a whole.

    Normalised addresses are ASCII (the local part must be; the domain is punycode), so
    ``str.lower`` is exact and cheap, which matters on the import path."""
    return email.lower()


def same_mailbox(a: str, b: str) -> bool:
    """True when two normalised addresses name one mailbox."""
    return a.lower() == b.lower()
