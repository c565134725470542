"""The HTTP API: an ASGI app over the same service functions the CLI calls.

Routes are thin (parse, call the service, shape the response).  Every ``/v1``
route needs ``Authorization: Bearer <key>`` and works on the key's account
only.  To add an area, write a ``routes_<area>.py`` with an ``APIRouter``
(``route_class=ErrorRoute``) and append it to ``V1_ROUTERS`` (or pass it in
``extra_routers``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

import lunamail
from lunamail.app.feedback import SnsVerifier
from lunamail.domain.messages import Later, Message
from lunamail.entrypoints.http import (
    routes_account,
    routes_admin,
    routes_campaigns,
    routes_domains,
    routes_exports,
    routes_feedback,
    routes_guard,
    routes_imports,
    routes_lists,
    routes_reports,
    routes_subscribers,
    routes_suppressions,
    routes_tracking,
    routes_uploads,
    routes_users,
)
from lunamail.entrypoints.http.auth import require_account
from lunamail.entrypoints.http.context import ApiContext, Publish
from lunamail.entrypoints.http.cors import install_cors
from lunamail.entrypoints.http.docs import install_docs
from lunamail.entrypoints.http.edge import BodyAfterAuth
from lunamail.entrypoints.http.errors import install_error_handlers
from lunamail.entrypoints.http.schemas import Health, error_responses
from lunamail.entrypoints.web.app import install_console
from lunamail.ports.deps import Deps

DESCRIPTION = """Audiences, campaigns and reports.

* Authenticate with `Authorization: Bearer <API key>` (`lunamail keys create`).
* Every error is `{"error": {"code", "message", "details"}}`; `code` is stable (see `ErrorCode`).
* Every listing is `{"items": [...], "next_cursor": ...}`: pass `next_cursor` as `cursor`.
* Times are RFC 3339 strings with an offset; durations and rates name their unit
  (`expires_in_seconds`, `send_rate_per_second`); `*_rate` ratios are fractions from 0 to 1.
"""

# Authenticated routers mounted under /v1, in the order they appear in the docs.
V1_ROUTERS: list[APIRouter] = [
    routes_account.router,
    routes_lists.router,
    routes_subscribers.router,
    routes_subscribers.mailbox_router,
    routes_suppressions.router,
    routes_imports.router,
    routes_campaigns.router,
    routes_reports.router,
    routes_users.router,
    routes_exports.router,
    routes_guard.router,
    routes_domains.router,
    routes_admin.router,
]
# Routers outside /v1 that authorise requests their own way (signed URLs).
PUBLIC_ROUTERS: list[APIRouter] = [routes_uploads.router, routes_tracking.router]

# The files blob adapter signs upload URLs with this (account, purpose) key.
UPLOAD_KEY_OWNER = "*"
UPLOAD_KEY_PURPOSE = "blob-upload"


def _operation_id(route: APIRoute) -> str:
    """The route function's name (``create_list``), so generated clients read well."""
    return route.name


class _Bus(Protocol):
    def publish(self, messages: Iterable[Message | Later]) -> Any: ...


class _System(Protocol):
    """What ``runtime.bootstrap.bootstrap`` returns, as far as the API needs it."""

    @property
    def deps(self) -> Deps: ...

    @property
    def bus(self) -> _Bus: ...


def create_app(
    system: _System | Deps,
    *,
    publish: Publish | None = None,
    extra_routers: Sequence[APIRouter] = (),
    upload_signing_key: bytes | None = None,
    sns_verifier: SnsVerifier | None = None,
) -> FastAPI:
    """Build the ASGI app over a bootstrapped system (or bare ``Deps`` plus ``publish``,
    for tests).  OpenAPI docs are at ``/docs``, the schema at ``/openapi.json``."""
    if isinstance(system, Deps):
        deps = system
        if publish is None:
            raise TypeError("create_app(deps) needs publish=: there is no bus to hand messages to")
    else:
        deps = system.deps
        publish = publish or system.bus.publish
    if upload_signing_key is None:
        upload_signing_key = deps.secrets.key(UPLOAD_KEY_OWNER, UPLOAD_KEY_PURPOSE)

    app = FastAPI(
        title="Lunamail API",
        version=lunamail.__version__ if hasattr(lunamail, "__version__") else "0.1.0",
        description=DESCRIPTION,
        docs_url=None,  # served from local files by install_docs, never from a CDN
        redoc_url=None,
        generate_unique_id_function=_operation_id,
    )
    install_docs(app, title=app.title)
    queue = None if isinstance(system, Deps) else getattr(system, "queue", None)
    app.state.lunamail = ApiContext(
        deps=deps, publish=publish, upload_signing_key=upload_signing_key, queue=queue
    )
    install_error_handlers(app)
    # open pixels and click redirects are the hottest requests: answered before routing
    app.add_middleware(routes_tracking.TrackingFront)
    # a /v1 body is read only after its key checked out (FastAPI reads bodies before auth)
    app.add_middleware(BodyAfterAuth)
    install_cors(app, deps.settings.cors_origins)

    @app.get("/health", tags=["health"], response_model=Health, summary="Liveness (no authentication)")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    v1 = APIRouter(
        prefix="/v1", dependencies=[Depends(require_account)], responses=error_responses(401, 403, 422)
    )
    for router in (*V1_ROUTERS, *extra_routers):
        v1.include_router(router)
    app.include_router(v1)
    for router in PUBLIC_ROUTERS:
        app.include_router(router)
    # SES bounce/complaint notifications over SNS: the SNS signature is the authentication.
    app.include_router(routes_feedback.router_factory(publish, deps, sns_verifier))
    install_console(app)  # the web console at / (its own sign-in, the same use cases)
    return app
