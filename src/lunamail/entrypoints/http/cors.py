"""CORS (off unless ``cors_origins`` is set) and ``OPTIONS`` answered as HTTP says.

Starlette answers ``OPTIONS`` with a 405 whose ``Allow`` names only the first route
that matched the path (``/v1/lists`` would say ``POST`` though ``GET`` works too).
:class:`OptionsAnswer` replies ``204`` with every method the path takes, without
authentication (it reveals nothing a 401 would not).  With CORS on, Starlette's
``CORSMiddleware`` sits outside it and answers the browsers' preflights.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from lunamail.entrypoints.http.errors import error_response


def cors_origins(setting: Iterable[str]) -> list[str]:
    """``LUNAMAIL_CORS_ORIGINS`` as origins (a trailing ``/`` is not part of an origin)."""
    return [o.strip().rstrip("/") for o in setting if o.strip()]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class OptionsAnswer:
    def __init__(self, app: ASGIApp, *, router_of: FastAPI) -> None:
        self.app = app
        self.router_of = router_of

    def allowed(self, scope: Scope) -> set[str]:
        """Every method some route takes fully for this path (routers nest; ask them)."""
        methods: set[str] = set()
        for route in self.router_of.router.routes:
            if isinstance(route, Mount):  # static files
                if route.matches(scope)[0] is not Match.NONE:
                    methods.update({"GET", "HEAD"})
                continue
            methods.update(m for m in _METHODS if route.matches({**scope, "method": m})[0] is Match.FULL)
        return methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        methods = self.allowed(scope)
        response: Response
        if not methods:
            response = error_response(404, "not_found", f"no route OPTIONS {scope['path']}")
        else:
            response = Response(status_code=204, headers={"Allow": ", ".join(sorted(methods | {"OPTIONS"}))})
        await response(scope, receive, send)


def install_cors(app: FastAPI, setting: Iterable[str]) -> None:
    """Add the OPTIONS answer, then (outermost) CORS when origins are configured."""
    app.add_middleware(OptionsAnswer, router_of=app)
    origins = cors_origins(setting)
    if origins:  # outermost: a preflight is answered before authentication
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After", "WWW-Authenticate"],
            allow_credentials=False,  # keys travel in a header, never in cookies
            max_age=600,
        )
