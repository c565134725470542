"""Mount the console on the API's ASGI app: its pages at ``/`` and its static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from lunamail.entrypoints.web import (
    pages_admin,
    pages_audience,
    pages_auth,
    pages_campaigns,
    pages_settings,
)
from lunamail.entrypoints.web.common import STATIC

ROUTERS = (pages_auth.router, pages_audience.router, pages_campaigns.router, pages_admin.router,
           pages_settings.router)


def install_console(app: FastAPI) -> None:
    """Add the console's routes (after the API's, so ``/v1`` and the public routes win)."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="console-static")
