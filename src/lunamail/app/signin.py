"""Sign in, sign out, set a password from a one-time link, reset a password.

These come before there is an actor (they make one), so they are plain functions,
not ``@command`` use cases.
Sign-in is rate-limited per client address and per e-mail address (429), and an address
is locked after repeated failures (see the accounts service).  Every successful sign-in
makes a new session value, so a value planted before sign-in never becomes a session.

Single sign-on (OpenID Connect, authorization code with PKCE, when an issuer is set):
:func:`start_single_sign_on` makes the state, nonce and code verifier and the provider's
URL; the door keeps the state in the browser too (a cookie), and :func:`finish_single_sign_on`
wants both copies to match, spends the state (once), redeems the code, verifies the ID
token and signs in the user of its verified address.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import urlsplit

from lunamail.app.base import Actor
from lunamail.app.users import set_password_url
from lunamail.domain.accounts import User
from lunamail.ports.deps import Deps
from lunamail.ports.identity import IdentityProvider, IdentityRefused
from lunamail.ports.mailer import OutgoingMail, SendResult
from lunamail.services.accounts import sso, two_factor, users

# What the console's doors need of a session and of a refused sign-in, re-exported so
# that they reach the accounts service only through this layer.
from lunamail.services.accounts.errors import InvalidInput as InvalidInput
from lunamail.services.accounts.errors import LockedOut as LockedOut
from lunamail.services.accounts.errors import SignInRefused as SignInRefused
from lunamail.services.accounts.errors import TooManyRequests as TooManyRequests
from lunamail.services.accounts.two_factor import CHALLENGE_SECONDS as CHALLENGE_SECONDS
from lunamail.services.accounts.users import SESSION_SECONDS as SESSION_SECONDS
from lunamail.services.accounts.users import Session as Session
from lunamail.services.accounts.users import csrf_matches as csrf_matches

log = logging.getLogger("lunamail.signin")

PER_CLIENT_PER_MINUTE = 30
PER_ADDRESS_PER_MINUTE = 10
RESET_LINK_SECONDS = 3600
SSO_CALLBACK_PATH = "/login/sso/callback"
MAX_CODE = 4096  # an authorization code longer than this is nobody's


@dataclass(frozen=True)
class SignedIn:
    cookie: str  # the session value to set as a cookie
    session: users.Session
    user: User
    actor: Actor


def actor_of(user: User) -> Actor:
    return Actor(user.account, user.role, email=user.email)


def _throttle(deps: Deps, client: str, email: str) -> None:
    ok = users.throttle(deps, f"client:{client}", limit=PER_CLIENT_PER_MINUTE, window=60)
    ok = users.throttle(deps, f"address:{email.strip().lower()}", limit=PER_ADDRESS_PER_MINUTE, window=60) and ok
    if not ok:
        raise TooManyRequests("too many attempts: wait a minute and try again")


def _signed_in(deps: Deps, user: User, previous: str | None) -> SignedIn:
    users.end_session(deps, previous)  # rotation: the old value dies with the new one's birth
    cookie, session = users.create_session(deps, user)
    return SignedIn(cookie, session, user, actor_of(user))


@dataclass(frozen=True)
class SecondFactorNeeded:
    """The password was right; a code from the user's app (or a recovery code) comes next."""

    token: str  # the challenge, for the browser to keep (a cookie) and send back
    enrol: bool  # the account requires a second factor that this user has not set up yet


def _after_password(deps: Deps, user: User, previous: str | None, next_path: str) -> SignedIn | SecondFactorNeeded:
    has = two_factor.is_enabled(deps, user.account, user.email)
    if not has and not two_factor.required(deps, user.account):
        return _signed_in(deps, user, previous)
    token = two_factor.open_challenge(deps, user.account, user.email, next_path, enrol=not has)
    return SecondFactorNeeded(token, enrol=not has)


def sign_in(deps: Deps, email: str, password: str, *, client: str, previous: str | None = None,
            next_path: str = "/") -> SignedIn | SecondFactorNeeded:
    """Check the address and password (SignInRefused, LockedOut, TooManyRequests) and
    open a new session, or, for a user with a second factor (or an account requiring
    one), the challenge that :func:`pass_second_factor` finishes."""
    _throttle(deps, client, email)
    user = users.verify_password(deps, email, password)
    return _after_password(deps, user, previous, next_path)


def second_factor_challenge(deps: Deps, token: str | None) -> two_factor.Challenge | None:
    """The sign-in waiting for its second factor, or None (expired, used, unknown)."""
    return two_factor.challenge(deps, token)


def enrolment_at_sign_in(deps: Deps, token: str | None) -> two_factor.Enrolment:
    """For a user who must set up a second factor before signing in: the key to add to
    their app (the same one until it is confirmed)."""
    found = two_factor.challenge(deps, token)
    if found is None or not found.enrol:
        raise SignInRefused("this sign-in expired: sign in again")
    return (two_factor.pending_enrolment(deps, found.account, found.email)
            or two_factor.begin_enrolment(deps, found.account, found.email))


def pass_second_factor(deps: Deps, token: str | None, code: str, *, client: str,
                       previous: str | None = None) -> tuple[SignedIn, str, list[str]]:
    """Finish a sign-in with a code (or a recovery code): the session, the path to open,
    and new recovery codes when this was the user's enrolment (shown once).
    SignInRefused for a wrong code or an expired challenge; TooManyRequests."""
    if not users.throttle(deps, f"client:{client}", limit=PER_CLIENT_PER_MINUTE, window=60):
        raise TooManyRequests("too many attempts: wait a minute and try again")
    found = two_factor.challenge(deps, token)
    if found is None or token is None:
        raise SignInRefused("this sign-in expired: sign in again")
    codes: list[str] = []
    if found.enrol:
        codes = two_factor.confirm_enrolment(deps, found.account, found.email, code)
    elif not two_factor.verify(deps, found.account, found.email, code):
        raise SignInRefused("that code is not right: type the current one from your app, or a recovery code")
    if not two_factor.close_challenge(deps, token):
        raise SignInRefused("this sign-in expired: sign in again")
    user = users.get_user(deps, found.account, found.email)
    return _signed_in(deps, user, previous), found.next, codes


def link_user(deps: Deps, token: str) -> User | None:
    """Who a set-password link is for, without spending it (for the form)."""
    return users.peek_link(deps, token)


def set_password_with_link(deps: Deps, token: str, password: str, *, client: str,
                           previous: str | None = None) -> SignedIn | SecondFactorNeeded:
    """Spend the link, set the password and sign in (through the second factor when the
    user has one or the account requires one).  The password rules are checked before
    the link is spent, so a too-short password does not waste the link."""
    _throttle(deps, client, f"link:{token[:200]}")  # per link: one link's guessers slow no other
    users.check_password_rules(password)
    user = users.use_link(deps, token)
    user = users.set_password(deps, user.account, user.email, password)
    return _after_password(deps, user, previous, "/")


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


# ---------------------------------------------------------------- single sign-on


@dataclass(frozen=True)
class SsoStarted:
    url: str  # send the browser there
    state: str  # keep it in the browser (a cookie) for the way back


def sso_enabled(deps: Deps) -> bool:
    return deps.identity is not None


def _provider(deps: Deps) -> IdentityProvider:
    if deps.identity is None:
        raise SignInRefused("single sign-on is not set up on this console")
    return deps.identity


def sso_redirect_uri(deps: Deps) -> str:
    return deps.settings.base_url.rstrip("/") + SSO_CALLBACK_PATH


def start_single_sign_on(deps: Deps, *, next_path: str, client: str) -> SsoStarted:
    """A sign-in at the provider: fresh state, nonce and PKCE verifier, kept ten minutes."""
    provider = _provider(deps)
    if not users.throttle(deps, f"client:{client}", limit=PER_CLIENT_PER_MINUTE, window=60):
        raise TooManyRequests("too many attempts: wait a minute and try again")
    pending = sso.begin(deps, next_path)
    try:
        url = provider.authorization_url(redirect_uri=sso_redirect_uri(deps), state=pending.state,
                                         nonce=pending.nonce, code_verifier=pending.code_verifier)
    except IdentityRefused as exc:
        log.warning("single sign-on cannot start: %s", exc)
        raise SignInRefused("the identity provider cannot be reached now: try again later") from exc
    return SsoStarted(url, pending.state)


def finish_single_sign_on(deps: Deps, *, state: str, code: str, browser_state: str | None, error: str = "",
                          client: str, previous: str | None = None) -> tuple[SignedIn, str]:
    """The provider's answer (``state``, ``code`` or ``error``): the session of the user it
    vouches for and the path to open.  SignInRefused, saying what to do, when the state
    is not this browser's, was used or expired, the provider refused, the ID token fails
    a check, or the address is not verified or has no user (and may not get one)."""
    provider = _provider(deps)
    if not users.throttle(deps, f"client:{client}", limit=PER_CLIENT_PER_MINUTE, window=60):
        raise TooManyRequests("too many attempts: wait a minute and try again")
    start_again = "this sign-in did not start in this browser, or was used or expired: start again"
    if not state or not browser_state or not hmac.compare_digest(state.encode(), browser_state.encode()):
        raise SignInRefused(start_again)
    pending = sso.take(deps, state)
    if pending is None:
        raise SignInRefused(start_again)
    if error or not code or len(code) > MAX_CODE:
        raise SignInRefused(f"the identity provider did not sign you in ({error[:100] or 'no code'})")
    try:
        identity = provider.redeem(code=code, redirect_uri=sso_redirect_uri(deps),
                                   code_verifier=pending.code_verifier, nonce=pending.nonce)
    except IdentityRefused as exc:
        log.warning("single sign-on refused: %s", exc)
        raise SignInRefused("the identity provider's answer did not pass the checks: start again") from exc
    user = sso.user_for(deps, identity)
    return _signed_in(deps, user, previous), pending.next
