"""The one-identity-per-mailbox rule (``domain.addresses``) and the merge of case duplicates."""

from __future__ import annotations

from lunamail.domain import audience as dom
from lunamail.domain.addresses import mailbox_key, same_mailbox
from lunamail.lib import emails
from lunamail.services.audience.migrate import merge_subscribers


def test_every_spelling_of_one_mailbox_has_one_key() -> None:
    spellings = ["Jane@Example.com", "jane@example.com", " JANE@EXAMPLE.COM ", "jAnE@eXaMpLe.CoM"]
    keys = {mailbox_key(emails.normalize(s)) for s in spellings}
    assert keys == {"jane@example.com"}
    assert emails.normalize("Jane@Example.com") == "Jane@example.com"  # the spelling stays
    assert dom.subscriber_sk("Jane@example.com") == dom.subscriber_sk("JANE@example.com") == "S#jane@example.com"
    assert dom.suppression_sk("EVE@example.com") == "SUP#eve@example.com"
    assert dom.optout_sk("Ann@x.org") == dom.optout_sk("ann@x.org")
    assert same_mailbox("Dave@example.com", "dAVE@example.com")
    assert not same_mailbox("dave@example.com", "dave2@example.com")


def test_merging_keeps_the_first_spelling_the_strictest_status_and_the_newest_fields() -> None:
    old = {"pk": "P", "sk": "S#Dave@x.org", "email": "Dave@x.org", "status": "subscribed", "name": "Dave",
           "fields": {"city": "Oslo", "age": 40}, "created_at": 1.0, "updated_at": 5.0, "source": "api"}
    new = {"pk": "P", "sk": "S#dave@x.org", "email": "dave@x.org", "status": "unsubscribed", "name": "",
           "fields": {"age": 41}, "created_at": 2.0, "updated_at": 9.0, "source": "import:abc", "role": True,
           "status_reason": "unsubscribed (page, all)"}
    for a, b in ((old, new), (new, old)):
        got = merge_subscribers(a, b, now=10.0)
        assert (got["email"], got["sk"], got["source"], got["created_at"]) == ("Dave@x.org", "S#dave@x.org", "api", 1.0)
        assert (got["status"], got["status_reason"]) == ("unsubscribed", "unsubscribed (page, all)")
        assert got["fields"] == {"city": "Oslo", "age": 41}
        assert (got["name"], got["role"], got["updated_at"]) == ("Dave", True, 10.0)
    strictest = [max(("subscribed", s), key=lambda x: dom.STRICTNESS[x]) for s in dom.STATUSES]
    assert strictest == ["subscribed", "unconfirmed", "unsubscribed", "bounced", "complained"]
