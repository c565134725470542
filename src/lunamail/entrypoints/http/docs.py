"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) from files inside the package.

FastAPI's defaults load both from a CDN, so the docs were a blank page offline.  The
files come from the npm packages ``swagger-ui-dist`` and ``redoc`` (package-lock.json);
``make`` and the wheel build copy them into ``static/docs`` (``scripts/docs_assets.py``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).parent / "static" / "docs"
ASSETS_URL = "/docs-assets"

# The pages may load nothing from elsewhere (ReDoc's sidebar would fetch a logo from its
# vendor's CDN); inline script and styles are how both UIs start and style themselves.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)

_MISSING = (
    "<!doctype html><title>API docs not built</title><p>The API docs' files are missing from this "
    "installation: run <code>make assets</code> in the source tree. The OpenAPI document is at "
    '<a href="/openapi.json">/openapi.json</a>.</p>'
)


def install_docs(app: FastAPI, *, title: str) -> None:
    """Serve the docs pages and their files; the app must be built with ``docs_url=None``
    and ``redoc_url=None`` so FastAPI's CDN pages are not registered."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR, check_dir=False), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    def built(name: str) -> bool:
        return (ASSETS_DIR / name).is_file()

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        if not built("swagger-ui-bundle.js"):
            return HTMLResponse(_MISSING, status_code=503)
        return _locked(get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} — Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge from a remote validator
        ))

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        if not built("redoc.standalone.js"):
            return HTMLResponse(_MISSING, status_code=503)
        return _locked(get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} — ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        ))


def _locked(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page
