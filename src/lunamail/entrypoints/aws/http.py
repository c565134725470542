"""The HTTP function: API Gateway HTTP API (payload 2.0) -> the same ASGI app ``serve`` runs.

REST (``/v1``), the tracking pixel and clicks, the unsubscribe pages with RFC 8058
one-click POST, the web view, uploads and the SES/SNS feedback route all answer
here, through Mangum.  The API's custom domain is the installation's ``BaseUrl``,
so every link a message carries reaches this function.

Without a custom domain the template leaves ``LUNAMAIL_BASE_URL`` empty for this
function (its own API id would make a dependency cycle), and the base URL is taken
from the first request's ``requestContext.domainName``: the API's default
``execute-api`` host, which is what the worker functions are given too.

The app is built on the first event and kept for the container's life.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from mangum import Mangum

from lunamail.config import Settings
from lunamail.entrypoints.aws.system import build_system
from lunamail.entrypoints.http.app import create_app
from lunamail.runtime.bootstrap import System


def base_url_of(event: Mapping[str, Any]) -> str:
    """``https://<domainName>`` of an HTTP API event ("" when it names none)."""
    ctx = event.get("requestContext")
    domain = ctx.get("domainName") if isinstance(ctx, Mapping) else None
    return f"https://{domain}" if isinstance(domain, str) and domain else ""


class HttpApp:
    """One container's app; ``handle`` is the Lambda entry."""

    def __init__(
        self,
        build: Callable[[Settings], System] = build_system,
        load: Callable[[], Settings] = Settings.load,
    ) -> None:
        self._build, self._load = build, load
        self._system: System | None = None
        self._handler: Mangum | None = None
        self._lock = threading.Lock()

    @property
    def system(self) -> System | None:
        return self._system

    def _handler_for(self, event: Mapping[str, Any]) -> Mangum:
        with self._lock:
            if self._handler is None:
                settings = self._load()
                if not settings.base_url:
                    settings = replace(settings, base_url=base_url_of(event))
                self._system = self._build(settings)
                self._handler = Mangum(create_app(self._system), lifespan="off")
            return self._handler

    def handle(self, event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
        result: dict[str, Any] = self._handler_for(event)(dict(event), context)  # type: ignore[arg-type]
        return result

    def reset(self) -> None:
        """Close and forget the app (tests change the environment between events)."""
        with self._lock:
            system, self._system, self._handler = self._system, None, None
        if system is not None:
            system.close()


_app = HttpApp()


def http_handler(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Lambda entry of the HTTP function (``lunamail.entrypoints.aws.http_handler``)."""
    return _app.handle(event, context)


def reset() -> None:
    _app.reset()
