"""Accounts service: keys are hashed at rest, revocation, sending lock, tenancy of keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from lunamail.adapters.itemstore.sqlite import SqliteItemStore
from lunamail.config import Settings
from lunamail.domain.accounts import AccountSendingLocked, AccountSendingUnlocked
from lunamail.ports.blobs import Blobs
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.ports.secrets import DerivedSecrets
from lunamail.services.accounts import api
from lunamail.services.accounts.errors import Conflict, InvalidInput, NotFound


@pytest.fixture()
def deps(tmp_path: Path) -> Iterator[Deps]:
    store = SqliteItemStore(tmp_path / "items.db")
    d = Deps(
        settings=Settings(data_dir=tmp_path),
        store=store,
        blobs=cast(Blobs, None),  # the accounts service never touches blobs
        clock=FakeClock(),
        secrets=DerivedSecrets(b"k" * 32),
    )
    yield d
    store.close()


def _all_rows(path: Path) -> bytes:
    """Every byte the SQLite file holds, to prove a secret is not in it anywhere."""
    return path.read_bytes() + (path.with_name(path.name + "-wal").read_bytes()
                                if path.with_name(path.name + "-wal").exists() else b"")


def test_create_get_and_list_accounts(deps: Deps) -> None:
    a = api.create_account(deps, "Default", account_id="default")
    b = api.create_account(deps, "Second")
    assert a.id == "default"
    assert b.id != a.id and api.get_account(deps, b.id).name == "Second"
    accounts, cursor = api.list_accounts(deps)
    assert sorted(x.id for x in accounts) == sorted([a.id, b.id])
    assert cursor is None
    with pytest.raises(Conflict):
        api.create_account(deps, "again", account_id="default")
    with pytest.raises(NotFound):
        api.get_account(deps, "nobody")


@pytest.mark.parametrize("bad", ["", "UPPER", "has#hash", "-lead", "x" * 64])
def test_account_id_is_validated(deps: Deps, bad: str) -> None:
    with pytest.raises(InvalidInput):
        api.create_account(deps, "n", account_id=bad)


def test_key_is_hashed_at_rest_and_authenticates(deps: Deps, tmp_path: Path) -> None:
    api.create_account(deps, "Default", account_id="default")
    issued = api.create_api_key(deps, "default", "ci")
    assert issued.secret.startswith("lm_") and len(issued.secret) >= 40
    assert issued.key.prefix == issued.secret[:11]
    assert api.authenticate(deps, issued.secret) == "default"
    # The plaintext is nowhere in the database file (nor its write-ahead log).
    store = cast(SqliteItemStore, deps.store)
    store.close()
    raw = _all_rows(tmp_path / "items.db")
    assert issued.secret.encode() not in raw
    assert api.hash_key(issued.secret).encode() in raw


def test_listing_shows_no_secret(deps: Deps) -> None:
    api.create_account(deps, "Default", account_id="default")
    issued = api.create_api_key(deps, "default", "laptop")
    keys = api.list_api_keys(deps, "default")
    assert [k.label for k in keys] == ["laptop"]
    dumped = repr([k.to_dict() for k in keys])
    assert issued.secret not in dumped and api.hash_key(issued.secret) not in dumped


@pytest.mark.parametrize(
    "key", [None, "", "lm_", "not-a-key", "lm_" + "A" * 43, "x" * 1000]
)
def test_unknown_keys_fail(deps: Deps, key: str | None) -> None:
    api.create_account(deps, "Default", account_id="default")
    api.create_api_key(deps, "default")
    assert api.authenticate(deps, key) is None


def test_revoke(deps: Deps) -> None:
    api.create_account(deps, "Default", account_id="default")
    keep = api.create_api_key(deps, "default", "keep")
    drop = api.create_api_key(deps, "default", "drop")
    revoked = api.revoke_api_key(deps, "default", drop.key.prefix)
    assert revoked.revoked_at is not None and not revoked.active
    assert api.authenticate(deps, drop.secret) is None
    assert api.authenticate(deps, keep.secret) == "default"
    # Idempotent, and visible in the listing.
    assert api.revoke_api_key(deps, "default", drop.key.prefix).revoked_at == revoked.revoked_at
    active = api.list_api_keys(deps, "default", include_revoked=False)
    assert [k.label for k in active] == ["keep"]
    with pytest.raises(NotFound):
        api.revoke_api_key(deps, "default", "lm_zzzzzzzz")


def test_revoke_is_scoped_to_the_account(deps: Deps) -> None:
    api.create_account(deps, "A", account_id="a")
    api.create_account(deps, "B", account_id="b")
    key_a = api.create_api_key(deps, "a")
    with pytest.raises(NotFound):
        api.revoke_api_key(deps, "b", key_a.key.prefix)
    assert api.authenticate(deps, key_a.secret) == "a"
    assert api.list_api_keys(deps, "b") == []


def test_ambiguous_prefix_is_refused(deps: Deps) -> None:
    api.create_account(deps, "Default", account_id="default")
    api.create_api_key(deps, "default")
    api.create_api_key(deps, "default")
    with pytest.raises(Conflict) as caught:
        api.revoke_api_key(deps, "default", "lm_")  # every key starts so
    assert len(caught.value.details["matches"]) == 2
    with pytest.raises(InvalidInput):
        api.revoke_api_key(deps, "default", "lm")


def test_key_for_unknown_account_is_refused(deps: Deps) -> None:
    with pytest.raises(NotFound):
        api.create_api_key(deps, "ghost")


def test_lock_and_unlock_sending(deps: Deps) -> None:
    api.create_account(deps, "Default", account_id="default")
    numbers: dict[str, Any] = {"bounce_rate": 0.12, "window": 3600}
    events = api.lock_sending(deps, "default", "bounce rate above 10%", numbers)
    assert len(events) == 1 and isinstance(events[0], AccountSendingLocked)
    acct = api.get_account(deps, "default")
    assert acct.sending == "locked" and not acct.can_send
    assert acct.sending_reason == "bounce rate above 10%"
    assert acct.sending_numbers == numbers
    # A second lock keeps the first reason and emits nothing.
    assert api.lock_sending(deps, "default", "other", {}) == []
    assert api.get_account(deps, "default").sending_reason == "bounce rate above 10%"

    events = api.unlock_sending(deps, "default")
    assert len(events) == 1 and isinstance(events[0], AccountSendingUnlocked)
    acct = api.get_account(deps, "default")
    assert acct.sending == "active" and acct.can_send and acct.sending_reason == ""
    assert api.unlock_sending(deps, "default") == []
    with pytest.raises(NotFound):
        api.lock_sending(deps, "ghost", "x", {})
