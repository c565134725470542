"""Users, roles, passwords, one-time links, sessions and lock-out of the accounts service,
and the role checks of the application layer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any, cast

import pytest

from lunamail.adapters.itemstore.sqlite import SqliteItemStore
from lunamail.adapters.mailer.memory import MemoryMailer
from lunamail.app import signin
from lunamail.app import users as users_app
from lunamail.app.base import ROLES, Actor, Env, Permission
from lunamail.app.errors import Forbidden
from lunamail.config import Settings
from lunamail.domain.accounts import ROLES as ROLE_NAMES
from lunamail.ports.blobs import Blobs
from lunamail.ports.clock import FakeClock
from lunamail.ports.deps import Deps
from lunamail.ports.secrets import DerivedSecrets
from lunamail.services.accounts import api as accounts
from lunamail.services.accounts import users
from lunamail.services.accounts.errors import (
    Conflict,
    InvalidInput,
    LockedOut,
    SignInRefused,
    TooManyRequests,
)

PASSWORD = "correct horse battery"


@pytest.fixture()
def deps(tmp_path: Path) -> Iterator[Deps]:
    store = SqliteItemStore(tmp_path / "items.db")
    d = Deps(settings=Settings(data_dir=tmp_path, base_url="https://mail.example.org"), store=store,
             blobs=cast(Blobs, None), clock=FakeClock(time.time()), secrets=DerivedSecrets(b"k" * 32),
             mailer=MemoryMailer())
    accounts.create_account(d, "Alpha", account_id="alpha")
    accounts.create_account(d, "Beta", account_id="beta")
    yield d
    store.close()


def _env(deps: Deps) -> Env:
    return Env(deps, lambda messages: None)


def operator(account: str) -> Actor:
    return Actor(account, "owner")


def _owner(deps: Deps, email: str = "own@example.com", account: str = "alpha") -> Any:
    return users_app.add_user(_env(deps), operator(account), email, "owner")


def test_roles_allow_what_the_issue_says() -> None:
    def can(role: str, p: Permission) -> bool:
        return Actor("a", role).can(p)

    assert can("viewer", Permission.READ) and not can("viewer", Permission.CAMPAIGNS)
    assert can("editor", Permission.CAMPAIGNS) and can("editor", Permission.AUDIENCE)
    assert not can("editor", Permission.SEND)
    assert can("sender", Permission.SEND) and not can("sender", Permission.ADMIN)
    assert can("admin", Permission.ADMIN) and not can("admin", Permission.OWN)
    assert all(can("owner", p) for p in Permission)
    assert not can("root", Permission.READ)
    assert set(ROLES) == set(ROLE_NAMES)


def test_add_user_gives_a_one_time_link_that_sets_the_password_and_signs_in(deps: Deps) -> None:
    invited = _owner(deps)
    assert invited.link.startswith("https://mail.example.org/login/link/")
    token = invited.link.rsplit("/", 1)[1]
    assert signin.link_user(deps, token) is not None  # looking does not spend it
    with pytest.raises(InvalidInput):  # too short: the link survives
        signin.set_password_with_link(deps, token, "short", client="c")
    done = signin.set_password_with_link(deps, token, PASSWORD, client="c")
    assert done.actor == Actor("alpha", "owner", email=invited.user.email)
    with pytest.raises(SignInRefused):  # used once
        signin.set_password_with_link(deps, token, PASSWORD, client="c")
    again = signin.sign_in(deps, "OWN@example.com ", PASSWORD, client="c")
    assert again.cookie != done.cookie
    stored = repr(deps.store.get("ACCT#alpha", "USER#own@example.com"))
    assert PASSWORD not in stored and "$argon2id$" in stored


def test_a_link_expires(deps: Deps) -> None:
    token = _owner(deps).link.rsplit("/", 1)[1]
    cast(FakeClock, deps.clock).advance(users.LINK_SECONDS + 1)
    assert signin.link_user(deps, token) is None
    with pytest.raises(SignInRefused):
        signin.set_password_with_link(deps, token, PASSWORD, client="c")


def test_wrong_password_and_unknown_address_are_refused_alike_then_locked(deps: Deps) -> None:
    _owner(deps)
    users.set_password(deps, "alpha", "own@example.com", PASSWORD)
    with pytest.raises(SignInRefused) as unknown:
        signin.sign_in(deps, "nobody@example.com", PASSWORD, client="c1")
    for n in range(users.MAX_FAILURES):
        with pytest.raises(SignInRefused) as wrong:
            signin.sign_in(deps, "own@example.com", f"wrong password {n}", client=f"c{n}")
    assert str(wrong.value) == str(unknown.value)
    with pytest.raises(LockedOut):  # even the right password, while locked
        signin.sign_in(deps, "own@example.com", PASSWORD, client="c9")
    cast(FakeClock, deps.clock).advance(users.LOCK_SECONDS + 1)
    assert signin.sign_in(deps, "own@example.com", PASSWORD, client="c9").user.email == "own@example.com"


def test_lock_out_does_not_tell_which_addresses_have_a_user(deps: Deps) -> None:
    _owner(deps)
    users.set_password(deps, "alpha", "own@example.com", PASSWORD)
    answers: dict[str, list[str]] = {}
    for address in ("own@example.com", "nobody@example.com"):
        seen = answers.setdefault(address, [])
        for n in range(users.MAX_FAILURES + 1):
            with pytest.raises((SignInRefused, LockedOut)) as refused:
                signin.sign_in(deps, address, f"wrong password {n}", client=f"{address}{n}")
            seen.append(type(refused.value).__name__)
    assert answers["own@example.com"] == answers["nobody@example.com"]
    assert answers["nobody@example.com"][-1] == "LockedOut"


def test_a_password_change_ends_the_sessions_opened_before_it(deps: Deps) -> None:
    _owner(deps)
    users_app.add_user(_env(deps), operator("alpha"), "bob@example.com", "admin")
    users.set_password(deps, "alpha", "bob@example.com", PASSWORD)
    stolen = signin.sign_in(deps, "bob@example.com", PASSWORD, client="attacker").cookie
    cast(FakeClock, deps.clock).advance(1)
    link = users.issue_link(deps, "alpha", "bob@example.com", ttl=3600)
    fresh = signin.set_password_with_link(deps, link, "a brand new password", client="bob")
    assert signin.current(deps, stolen) is None
    assert signin.current(deps, fresh.cookie) is not None  # the session the reset opened


def test_one_links_guessers_do_not_block_another_link(deps: Deps) -> None:
    _owner(deps)
    users_app.add_user(_env(deps), operator("alpha"), "ann@example.com", "viewer")
    for n in range(signin.PER_ADDRESS_PER_MINUTE):
        with pytest.raises(SignInRefused):
            signin.set_password_with_link(deps, f"guess-{n}-" + "x" * 20, PASSWORD, client=f"c{n}")
    link = users.issue_link(deps, "alpha", "ann@example.com", ttl=3600)
    assert signin.set_password_with_link(deps, link, PASSWORD, client="ann").user.email == "ann@example.com"


def test_sign_in_is_rate_limited_per_client(deps: Deps) -> None:
    for n in range(signin.PER_CLIENT_PER_MINUTE):
        with pytest.raises(SignInRefused):
            signin.sign_in(deps, f"nobody{n}@example.com", "x" * 12, client="10.0.0.1")
    with pytest.raises(TooManyRequests):
        signin.sign_in(deps, "other@example.com", "x" * 12, client="10.0.0.1")
    for _ in range(signin.PER_ADDRESS_PER_MINUTE):  # and per address, from any client
        with pytest.raises((SignInRefused, LockedOut)):  # (it locks out on the way)
            signin.sign_in(deps, "target@example.com", "x" * 12, client="10.0.0.2")
    with pytest.raises(TooManyRequests):
        signin.sign_in(deps, "target@example.com", "x" * 12, client="10.0.0.3")
    cast(FakeClock, deps.clock).advance(61)
    with pytest.raises(SignInRefused):
        signin.sign_in(deps, "nobody@example.com", "x" * 12, client="10.0.0.1")


def test_sessions_rotate_end_and_follow_the_user(deps: Deps) -> None:
    _owner(deps)
    users_app.add_user(_env(deps), operator("alpha"), "ed@example.com", "editor")
    users.set_password(deps, "alpha", "ed@example.com", PASSWORD)
    first = signin.sign_in(deps, "ed@example.com", PASSWORD, client="c")
    second = signin.sign_in(deps, "ed@example.com", PASSWORD, client="c", previous=first.cookie)
    assert signin.current(deps, first.cookie) is None  # rotated away
    found = signin.current(deps, second.cookie)
    assert found is not None and found[1].role == "editor"
    users_app.set_role(_env(deps), operator("alpha"), "ed@example.com", "viewer")
    found = signin.current(deps, second.cookie)
    assert found is not None and found[1].role == "viewer"  # at the next request
    signin.sign_out(deps, second.cookie)
    assert signin.current(deps, second.cookie) is None
    third = signin.sign_in(deps, "ed@example.com", PASSWORD, client="c")
    users_app.remove_user(_env(deps), operator("alpha"), "ed@example.com")
    assert signin.current(deps, third.cookie) is None
    cast(FakeClock, deps.clock).advance(1)
    assert signin.current(deps, "forged") is None


def test_role_checks_in_the_use_cases(deps: Deps) -> None:
    _owner(deps)
    env = _env(deps)
    admin = Actor("alpha", "admin")
    editor = Actor("alpha", "editor")
    users_app.add_user(env, admin, "view@example.com", "viewer")
    with pytest.raises(Forbidden):
        users_app.add_user(env, admin, "own2@example.com", "owner")  # only owners make owners
    with pytest.raises(Forbidden):
        users_app.set_role(env, admin, "own@example.com", "viewer")
    with pytest.raises(Forbidden):
        users_app.list_users(env, editor)
    with pytest.raises(Conflict):  # the last owner stays
        users_app.set_role(env, operator("alpha"), "own@example.com", "admin")
    with pytest.raises(Conflict):
        users_app.remove_user(env, operator("alpha"), "own@example.com")
    with pytest.raises(Conflict):  # an address has one user across the installation
        users_app.add_user(env, operator("beta"), "view@example.com", "viewer")
    assert [u.email for u in users_app.list_users(env, operator("beta"))] == []
    with pytest.raises(InvalidInput):
        users_app.add_user(env, operator("alpha"), "x@example.com", "root")
    with pytest.raises(InvalidInput):
        users_app.add_user(env, operator("alpha"), "not an address", "viewer")


def test_keys_have_roles_and_old_keys_act_as_owners(deps: Deps) -> None:
    viewer = accounts.create_api_key(deps, "alpha", "ro", role="viewer")
    assert accounts.authenticate_key(deps, viewer.secret) == ("alpha", "viewer")
    assert accounts.create_api_key(deps, "alpha", "default").key.role == "admin"
    legacy = accounts.create_api_key(deps, "alpha", "old")
    digest = accounts.hash_key(legacy.secret)
    item = deps.store.get(f"APIKEY#{digest}", "KEY")
    assert item is not None
    del item["role"]  # as a key written before roles existed
    deps.store.put(item)
    assert accounts.authenticate_key(deps, legacy.secret) == ("alpha", "owner")
    with pytest.raises(InvalidInput):
        accounts.create_api_key(deps, "alpha", "bad", role="god")


def test_password_reset_mails_a_link_through_the_relay(deps: Deps) -> None:
    _owner(deps)
    mailer = cast(MemoryMailer, deps.mailer)
    assert signin.request_password_reset(deps, "nobody@example.com", client="c") is False
    assert signin.request_password_reset(deps, "own@example.com", client="c") is True
    [mail] = mailer.sent
    assert mail.rcpt_to == "own@example.com"
    body = str(message_from_bytes(mail.data, policy=policy.default).get_body().get_content())  # type: ignore[union-attr]
    link = next(w for w in body.split() if w.startswith("https://mail.example.org/login/link/"))
    done = signin.set_password_with_link(deps, link.rsplit("/", 1)[1], PASSWORD, client="c")
    assert done.user.has_password


@pytest.mark.parametrize("second", ["demote", "remove"])
def test_two_owners_taken_away_at_once_leave_one(
    deps: Deps, monkeypatch: pytest.MonkeyPatch, second: str
) -> None:
    """Each of two admins takes away one of the two owners; the second change runs after the
    first one read the owners but before it wrote.  A read-then-write check lets both
    through and leaves the account without an owner; the transaction refuses the first."""
    _owner(deps, "a@example.com")
    _owner(deps, "b@example.com")
    real = deps.store.transact
    interleaved: list[str] = []

    def transact(ops: Any) -> None:
        if not interleaved:  # the first change's write: the other change gets in first
            interleaved.append("b")
            if second == "demote":
                users.set_role(deps, "alpha", "b@example.com", "admin")
            else:
                users.remove_user(deps, "alpha", "b@example.com")
        real(ops)

    monkeypatch.setattr(deps.store, "transact", transact)
    with pytest.raises(Conflict, match="last owner"):
        users.set_role(deps, "alpha", "a@example.com", "editor")
    owners = [u.email for u in users.list_users(deps, "alpha") if u.role == "owner"]
    assert owners == ["a@example.com"]
