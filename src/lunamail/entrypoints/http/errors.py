"""One JSON error shape for every failure the HTTP API returns.

``{"error": {"code": "not_found", "message": "...", "details": {...}}}`` — for
service errors, request validation, unknown routes and unexpected exceptions
alike, so a client needs one parser.  Service errors are mapped by class
name (each service keeps its own ``NotFound``, ``Conflict``, ...; services
never import one another, so there is no shared base class to catch).  The codes
and that mapping live in :mod:`lunamail.app.errors`, shared with the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from lunamail.app.errors import CODES, describe

log = logging.getLogger("lunamail.http")

# HTTP status -> code, for refusals that come from the framework (unknown route, bad method).
_STATUS_CODES: dict[int, str] = {code.status: name for name, code in reversed(CODES.items())}


class ApiError(Exception):
    """Raised by routes for HTTP-level refusals (401, 403, bad cursor, ...)."""

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": dict(details or {})}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=dict(headers or {}))


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    """Pydantic's errors flattened to {"fields": {"body.email": "..."}} plus the raw list."""
    fields: dict[str, str] = {}
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid"))
        fields.setdefault(loc, msg)
        errors.append({"loc": [str(p) for p in err.get("loc", ())], "msg": msg, "type": err.get("type", "")})
    return {"fields": fields, "errors": errors}


def exception_response(request: Request, exc: Exception) -> JSONResponse:
    """The response for an exception no specific handler took: a service error's mapped
    status, else a 500 that tells the client nothing about internals (the log has it)."""
    problem = describe(exc)
    if problem is not None:
        return error_response(problem.status, problem.code, problem.message, problem.details)
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred")


class ErrorRoute(APIRoute):
    """A route that turns any exception into the JSON error shape itself.

    Starlette sends handlers registered for ``Exception`` through its outermost
    middleware, which re-raises after responding; catching here keeps service
    errors (whose classes live in each service) and crashes inside the normal
    response path.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (StarletteHTTPException, RequestValidationError, ApiError):
                raise  # their own handlers shape them
            except Exception as exc:
                return exception_response(request, exc)

        return guarded


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through :func:`error_response`."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.details, headers)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "error")
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        else:
            message = str(exc.detail) if exc.detail else code.replace("_", " ")
        return error_response(exc.status_code, code, message, None, exc.headers)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, "invalid_input", "the request is not valid", _validation_details(exc))

    async def on_any_error(request: Request, exc: Exception) -> JSONResponse:
        # The backstop for failures outside a route (middleware); routes use ErrorRoute.
        return exception_response(request, exc)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_any_error)
