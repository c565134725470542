"""Sign in, sign out, set a password from a one-time link, reset a password.

These come before there is an actor (they make one), so they are plain functions,
not ``@command`` use cases.
Sign-in is rate-limited per client address and per e-mail address (429), and an address
is locked after repeated failures (see the accounts service).  Every successful sign-in
makes a new session value, so a value planted before sign-in never becomes a session.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import urlsplit

from lunamail.app.base import Actor
from lunamail.app.users import set_password_url
from lunamail.domain.accounts import User
from lunamail.ports.deps import Deps
from lunamail.ports.mailer import OutgoingMail, SendResult
from lunamail.services.accounts import users

# What the console's doors need of a session and of a refused sign-in, re-exported so
# that they reach the accounts service only through this layer.
from lunamail.services.accounts.errors import InvalidInput as InvalidInput
from lunamail.services.accounts.errors import LockedOut as LockedOut
from lunamail.services.accounts.errors import SignInRefused as SignInRefused
from lunamail.services.accounts.errors import TooManyRequests as TooManyRequests
from lunamail.services.accounts.users import SESSION_SECONDS as SESSION_SECONDS
from lunamail.services.accounts.users import Session as Session
from lunamail.services.accounts.users import csrf_matches as csrf_matches

PER_CLIENT_PER_MINUTE = 30
PER_ADDRESS_PER_MINUTE = 10
RESET_LINK_SECONDS = 3600


@dataclass(frozen=True)
class SignedIn:
    cookie: str  # the session value to set as a cookie
    session: users.Session
    user: User
    actor: Actor


def actor_of(user: User) -> Actor:
    return Actor(user.account, user.role)


def _throttle(deps: Deps, client: str, email: str) -> None:
    ok = users.throttle(deps, f"client:{client}", limit=PER_CLIENT_PER_MINUTE, window=60)
    ok = users.throttle(deps, f"address:{email.strip().lower()}", limit=PER_ADDRESS_PER_MINUTE, window=60) and ok
    if not ok:
        raise TooManyRequests("too many attempts: wait a minute and try again")


def _signed_in(deps: Deps, user: User, previous: str | None) -> SignedIn:
    users.end_session(deps, previous)  # rotation: the old value dies with the new one's birth
    cookie, session = users.create_session(deps, user)
    return SignedIn(cookie, session, user, actor_of(user))


def sign_in(deps: Deps, email: str, password: str, *, client: str, previous: str | None = None) -> SignedIn:
    """Check the address and password (SignInRefused, LockedOut, TooManyRequests) and
    open a new session."""
    _throttle(deps, client, email)
    user = users.verify_password(deps, email, password)
    return _signed_in(deps, user, previous)


def link_user(deps: Deps, token: str) -> User | None:
    """Who a set-password link is for, without spending it (for the form)."""
    return users.peek_link(deps, token)


def set_password_with_link(deps: Deps, token: str, password: str, *, client: str,
                           previous: str | None = None) -> SignedIn:
    """Spend the link, set the password and sign in.  The password rules are checked
    before the link is spent, so a too-short password does not waste the link."""
    _throttle(deps, client, f"link:{token[:200]}")  # per link: one link's guessers slow no other
    users.check_password_rules(password)
    user = users.use_link(deps, token)
    user = users.set_password(deps, user.account, user.email, password)
    return _signed_in(deps, user, previous)


def current(deps: Deps, cookie: str | None) -> tuple[users.Session, Actor] | None:
    """The session of a cookie and who it acts as now, or None."""
    found = users.get_session(deps, cookie)
    if found is None:
        return None
    session, user = found
    return session, actor_of(user)


def sign_out(deps: Deps, cookie: str | None) -> None:
    users.end_session(deps, cookie)


def _sender(deps: Deps) -> str:
    host = urlsplit(deps.settings.base_url).hostname or "localhost"
    return f"no-reply@{host if '.' in host and not host.replace('.', '').isdigit() else 'localhost'}"


def request_password_reset(deps: Deps, email: str, *, client: str) -> bool:
    """Mail a one-time reset link through the configured relay when the address has a
    user.  The caller says the same thing either way; the result (sent or not) is for
    tests and logs only."""
    _throttle(deps, client, email)
    user = users.find_user(deps, email)
    if user is None or deps.mailer is None:
        return False
    token = users.issue_link(deps, user.account, user.email, ttl=RESET_LINK_SECONDS)
    sender = _sender(deps)
    msg = EmailMessage()
    msg["From"] = f"Lunamail <{sender}>"
    msg["To"] = user.email
    msg["Subject"] = "Reset your Lunamail password"
    msg["Date"] = formatdate(deps.clock.now())
    msg["Message-ID"] = make_msgid(domain=sender.partition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(
        "Someone asked to reset the password of your Lunamail console.\n\n"
        f"Set a new one here (the link works once, for an hour):\n{set_password_url(deps, token)}\n\n"
        "If it was not you, ignore this message: nothing changes.\n"
    )
    results: list[SendResult] = []
    deps.mailer.send(
        [OutgoingMail(mail_from=sender, rcpt_to=user.email, data=msg.as_bytes(policy=policy.SMTP))],
        results.append,
    )
    return bool(results) and results[0].outcome == "sent"
