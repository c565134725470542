"""Account and API-key use cases, and how a door turns "--account X" into an Actor.

An account named on a command line must exist: :func:`actor` refuses an unknown one
with the known ids (a typo would otherwise create lists for nobody).  Creating
accounts and listing all of them is the installation's business, not a tenant's:
those use cases need the ``admin`` permission like keys do.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from lunamail.domain.accounts import DEFAULT_ACCOUNT, Account, ApiKey
from lunamail.ports.deps import Deps
from lunamail.services.accounts import api as accounts_api
from lunamail.services.accounts import users as account_users
from lunamail.services.accounts.errors import Conflict as AccountConflict
from lunamail.services.accounts.errors import NotFound as AccountNotFound

from .base import Actor, Emitted, Env, Page, Permission, command, query
from .errors import Forbidden, NotFound
from .users import invite

_KNOWN_SHOWN = 20  # how many known ids an unknown-account error lists


@dataclass(frozen=True)
class Initialised:
    account: str
    created: bool  # False when the default account existed already
    api_key: str | None  # the new key's secret (shown once), if one was issued
    owner: str | None = None  # the owner made now, if the account had none
    owner_link: str | None = None  # their one-time link to set a password


@dataclass(frozen=True)
class AccountUnlocked:
    account: Account
    changed: bool  # False when it was not locked


def known_accounts(deps: Deps, *, limit: int = _KNOWN_SHOWN) -> list[Account]:
    found, _ = accounts_api.list_accounts(deps, limit=limit)
    return found


def actor(env: Env, account: str, *, role: str = "owner") -> Actor:
    """The actor for an account id (or, failing that, a unique display name), or NotFound
    ``account 'acme' not found; known: default, ...``."""
    ref = account.strip()
    try:
        return Actor(accounts_api.get_account(env.deps, ref).id, role)
    except AccountNotFound:
        pass
    known = known_accounts(env.deps, limit=1000)
    named = [a for a in known if a.name.casefold() == ref.casefold()]
    if len(named) == 1:
        return Actor(named[0].id, role)
    ids = ", ".join(a.id for a in known[:_KNOWN_SHOWN]) or "none"
    raise NotFound(f"account {ref!r} not found; known: {ids}", {"account": ref})


def initialise(env: Env, *, new_key: bool = False, owner: str | None = None) -> Initialised:
    """Create the ``default`` account and its first key (idempotent; ``new_key`` issues
    another) and, when ``owner`` is given and the account has no owner yet, the owner
    with a one-time link to set their password.  Not a use case of an actor: it makes
    the first one."""
    created = True
    try:
        accounts_api.create_account(env.deps, "Default", account_id=DEFAULT_ACCOUNT)
    except AccountConflict:
        created = False
    secret: str | None = None
    if created or new_key:
        label = "init" if created else "init --new-key"
        secret = accounts_api.create_api_key(env.deps, DEFAULT_ACCOUNT, label, role="owner").secret
    link: str | None = None
    if owner and not any(u.role == "owner" for u in account_users.list_users(env.deps, DEFAULT_ACCOUNT)):
        link = invite(env.deps, DEFAULT_ACCOUNT, owner, "owner").link
    return Initialised(DEFAULT_ACCOUNT, created, secret, owner if link else None, link)


@query()
def me(env: Env, actor: Actor) -> Account:
    """The actor's account with its sending state."""
    return accounts_api.get_account(env.deps, actor.account)


def _installation_only(actor: Actor, what: str) -> None:
    """Tenants' roles stop at their own account: other accounts are the operator's."""
    if not actor.installation:
        raise Forbidden(f"only the installation's operator may {what}", {"permission": "installation"})


@query(Permission.ADMIN)
def list_accounts(env: Env, actor: Actor, *, limit: int = 100, cursor: str | None = None) -> Page[Account]:
    _installation_only(actor, "list accounts")
    found, nxt = accounts_api.list_accounts(env.deps, limit=limit, cursor=cursor)
    return Page(found, nxt)


@command(Permission.ADMIN)
def create_account(env: Env, actor: Actor, name: str, *, account_id: str | None = None) -> Emitted[Account]:
    _installation_only(actor, "create accounts")
    return Emitted(accounts_api.create_account(env.deps, name, account_id=account_id))


@command(Permission.ADMIN)
def unlock(env: Env, actor: Actor, account_id: str) -> Emitted[AccountUnlocked]:
    """Lift a sending lock set by the reputation guard (after fixing the cause): an admin
    of that account, or the installation's operator for any account."""
    if account_id != actor.account:
        _installation_only(actor, "unlock another account")
    events = accounts_api.unlock_sending(env.deps, account_id)
    after = accounts_api.get_account(env.deps, account_id)
    return Emitted(AccountUnlocked(after, bool(events)), events)


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str  # shown once; only its hash is stored


@command(Permission.ADMIN)
def create_key(env: Env, actor: Actor, *, label: str = "", role: str = "admin") -> Emitted[NewKey]:
    """A key acting with ``role`` (only owners make owner keys)."""
    if role == "owner":
        actor.require(Permission.OWN)
    issued = accounts_api.create_api_key(env.deps, actor.account, label, role=role)
    return Emitted(NewKey(issued.key, issued.secret))


@query(Permission.ADMIN)
def list_keys(env: Env, actor: Actor, *, include_revoked: bool = True) -> list[ApiKey]:
    return accounts_api.list_api_keys(env.deps, actor.account, include_revoked=include_revoked)


@command(Permission.ADMIN)
def revoke_key(env: Env, actor: Actor, prefix: str) -> Emitted[ApiKey]:
    """Revoke the key whose display prefix starts with ``prefix``; idempotent."""
    return Emitted(accounts_api.revoke_api_key(env.deps, actor.account, prefix))


def actor_for_key(deps: Deps, key: str | None) -> Actor | None:
    """The actor an API key speaks for (its account and role), or None for a missing,
    malformed, unknown or revoked key: the door answers 401 the same way for each."""
    found = accounts_api.authenticate_key(deps, key)
    return None if found is None else Actor(found[0], found[1])


@dataclass(frozen=True)
class SendingDefaults:
    """The installation's sending settings as they apply to the account (read-only here:
    they are settings of ``lunamail serve``, changed in its environment or TOML file)."""

    base_url: str
    relay: str  # scheme and host of the relay, never its credentials
    send_rate: float  # messages per second, 0 = unlimited
    send_window: str
    track_opens: bool
    track_clicks: bool
    dkim_domains: tuple[str, ...]
    single_sign_on: bool


@query()
def sending_defaults(env: Env, actor: Actor) -> SendingDefaults:
    s = env.deps.settings
    parts = urlsplit(s.smtp_url)
    relay = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    return SendingDefaults(s.base_url, relay, s.send_rate, s.send_window, s.track_opens, s.track_clicks,
                           tuple(k.domain for k in s.dkim), bool(s.oidc_issuer))
