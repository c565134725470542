"""Sign-in pages: password sign-in, single sign-on (OpenID Connect), the one-time link
that sets a password, reset by mail, sign-out.

Forms shown before there is a session carry a double-submit token: a random value in
an HttpOnly, SameSite=Strict cookie and the same value in the form, so another site
cannot post them (login CSRF).  Every successful sign-in sets a new session cookie and
ends the session the browser had before.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from lunamail.app import signin
from lunamail.app.signin import (
    SESSION_SECONDS,
    InvalidInput,
    LockedOut,
    SignInRefused,
    TooManyRequests,
)
from lunamail.domain.accounts import MIN_PASSWORD
from lunamail.entrypoints.web.common import (
    COOKIE,
    ConsoleRoute,
    WriterDep,
    client_of,
    ctx_of,
    error_message,
    qr_svg,
    redirect,
    render,
    secure_request,
    set_session_cookie,
)

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PRE_COOKIE = "lunamail_presession"
SSO_COOKIE = "lunamail_sso"  # the state of a single sign-on in progress, for the way back
SSO_PATH = "/login/sso"
MFA_COOKIE = "lunamail_mfa"  # a password accepted, the second factor to come
MFA_PATH = "/login/two-factor"


def _pre_token(request: Request) -> str:
    return request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)


def _with_pre(request: Request, response: Response, token: str) -> Response:
    response.set_cookie(PRE_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                        secure=secure_request(request), path="/login")
    return response


def _pre_ok(request: Request, sent: str) -> bool:
    cookie = request.cookies.get(PRE_COOKIE)
    return bool(cookie) and hmac.compare_digest((cookie or "").encode(), (sent or "").encode())


def _safe_next(value: str) -> str:
    """Only paths of this console (no //host or scheme), so a link cannot send people away."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value and not value.startswith("/login"):
        return value
    return "/"


def _page(request: Request, name: str, status: int = 200, **values: object) -> Response:
    token = _pre_token(request)
    sso = signin.sso_enabled(ctx_of(request).deps)
    return _with_pre(request, render(request, name, None, status=status, pre=token, sso=sso, **values), token)


def _signed_in(request: Request, done: signin.SignedIn | signin.SecondFactorNeeded, target: str,
               response: Response | None = None) -> Response:
    if isinstance(done, signin.SecondFactorNeeded):
        response = redirect(MFA_PATH)
        response.set_cookie(MFA_COOKIE, done.token, max_age=signin.CHALLENGE_SECONDS, httponly=True,
                            samesite="strict", secure=secure_request(request), path=MFA_PATH)
        return response
    response = response or redirect(target)
    set_session_cookie(response, request, done.cookie, SESSION_SECONDS)
    response.delete_cookie(PRE_COOKIE, path="/login")
    response.delete_cookie(SSO_COOKIE, path=SSO_PATH)
    response.delete_cookie(MFA_COOKIE, path=MFA_PATH)
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return _page(request, "login.html", next=_safe_next(next), email="", message="", notice="")


@router.post("/login")
def login(request: Request, email: Annotated[str, Form(max_length=320)],
          password: Annotated[str, Form(max_length=2000)], csrf: Annotated[str, Form(max_length=200)] = "",
          next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    if not _pre_ok(request, csrf):
        return _page(request, "login.html", 403, next=_safe_next(next), email=email, notice="",
                     message="This form expired: try again.")
    try:
        done = signin.sign_in(ctx_of(request).deps, email, password, client=client_of(request),
                              previous=request.cookies.get(COOKIE), next_path=_safe_next(next))
    except (SignInRefused, LockedOut, TooManyRequests) as exc:
        status = 429 if isinstance(exc, TooManyRequests) else 423 if isinstance(exc, LockedOut) else 401
        return _page(request, "login.html", status, next=_safe_next(next), email=email, notice="",
                     message=error_message(exc))
    return _signed_in(request, done, _safe_next(next))


def _two_factor_page(request: Request, status: int = 200, message: str = "") -> Response:
    deps = ctx_of(request).deps
    token = request.cookies.get(MFA_COOKIE)
    found = signin.second_factor_challenge(deps, token)
    if found is None:
        return redirect("/login")
    enrolment = signin.enrolment_at_sign_in(deps, token) if found.enrol else None
    return _page(request, "two_factor.html", status, enrolment=enrolment, message=message,
                 qr=qr_svg(enrolment.uri) if enrolment else "")


@router.get(MFA_PATH)
def two_factor_form(request: Request) -> Response:
    return _two_factor_page(request)


@router.post(MFA_PATH)
def two_factor_check(request: Request, code: Annotated[str, Form(max_length=64)],
                     csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    if not _pre_ok(request, csrf):
        return _two_factor_page(request, 403, "This form expired: try again.")
    try:
        done, target, codes = signin.pass_second_factor(
            ctx_of(request).deps, request.cookies.get(MFA_COOKIE), code, client=client_of(request),
            previous=request.cookies.get(COOKIE))
    except (SignInRefused, InvalidInput, TooManyRequests) as exc:
        status = 429 if isinstance(exc, TooManyRequests) else 401
        return _two_factor_page(request, status, error_message(exc))
    if codes:  # a new second factor: its recovery codes, once, then on to the console
        page = render(request, "recovery_codes.html", None, codes=codes, target=_safe_next(target))
        return _signed_in(request, done, target, page)
    return _signed_in(request, done, _safe_next(target))


@router.get("/login/sso")
def sso_start(request: Request, next: str = "/") -> Response:
    """Off to the identity provider; the state goes along in a cookie for the way back.
    A link, not a form: the console's pages only submit forms to themselves (CSP), and a
    sign-in started by another site cannot finish without this browser's state cookie."""
    try:
        started = signin.start_single_sign_on(ctx_of(request).deps, next_path=_safe_next(next[:2000]),
                                              client=client_of(request))
    except (SignInRefused, TooManyRequests) as exc:
        status = 429 if isinstance(exc, TooManyRequests) else 503
        return _page(request, "login.html", status, next=_safe_next(next[:2000]), email="", notice="",
                     message=error_message(exc))
    response = redirect(started.url)
    # Lax, not Strict: the way back is a top-level navigation from the provider's site
    response.set_cookie(SSO_COOKIE, started.state, max_age=600, httponly=True, samesite="lax",
                        secure=secure_request(request), path=SSO_PATH)
    return response


@router.get("/login/sso/callback")
def sso_callback(request: Request, state: str = "", code: str = "", error: str = "") -> Response:
    """The provider sends the browser back here (lengths are bounded by the sign-in use case)."""
    try:
        done, target = signin.finish_single_sign_on(
            ctx_of(request).deps, state=state, code=code, error=error, browser_state=request.cookies.get(SSO_COOKIE),
            client=client_of(request), previous=request.cookies.get(COOKIE))
    except (SignInRefused, TooManyRequests, InvalidInput) as exc:
        status = 429 if isinstance(exc, TooManyRequests) else 401
        response = _page(request, "login.html", status, next="/", email="", notice="", message=error_message(exc))
        response.delete_cookie(SSO_COOKIE, path=SSO_PATH)
        return response
    return _signed_in(request, done, _safe_next(target))


@router.get("/login/link/{token}")
def link_form(request: Request, token: str) -> Response:
    user = signin.link_user(ctx_of(request).deps, token)
    return _page(request, "set_password.html", 200 if user else 410, user=user, token=token,
                 min_length=MIN_PASSWORD, message="")


@router.post("/login/link/{token}")
def link_set_password(request: Request, token: str, password: Annotated[str, Form(max_length=2000)],
                      confirm: Annotated[str, Form(max_length=2000)],
                      csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    deps = ctx_of(request).deps
    user = signin.link_user(deps, token)
    message = ""
    if not _pre_ok(request, csrf):
        message = "This form expired: try again."
    elif password != confirm:
        message = "The two passwords differ."
    if user is None or message:
        return _page(request, "set_password.html", 410 if user is None else 422, user=user, token=token,
                     min_length=MIN_PASSWORD, message=message)
    try:
        done = signin.set_password_with_link(deps, token, password, client=client_of(request),
                                             previous=request.cookies.get(COOKIE))
    except (InvalidInput, SignInRefused, TooManyRequests) as exc:
        return _page(request, "set_password.html", 422, user=user, token=token, min_length=MIN_PASSWORD,
                     message=error_message(exc))
    return _signed_in(request, done, "/")


@router.get("/login/reset")
def reset_form(request: Request) -> Response:
    return _page(request, "reset.html", sent=False, email="", message="")


@router.post("/login/reset")
def reset(request: Request, email: Annotated[str, Form(max_length=320)],
          csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    if not _pre_ok(request, csrf):
        return _page(request, "reset.html", 403, sent=False, email=email, message="This form expired: try again.")
    try:
        signin.request_password_reset(ctx_of(request).deps, email, client=client_of(request))
    except TooManyRequests as exc:
        return _page(request, "reset.html", 429, sent=False, email=email, message=error_message(exc))
    return _page(request, "reset.html", sent=True, email=email, message="")


@router.post("/logout")
def logout(request: Request, viewer: WriterDep) -> Response:
    signin.sign_out(ctx_of(request).deps, viewer.cookie)
    response = redirect("/login", request)
    response.delete_cookie(COOKIE, path="/")
    return response
