"""GET /docs (Swagger UI) and /redoc (ReDoc), with their scripts and styles served by the gateway itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they stay blank on a machine without internet
access, where a gateway in front of local GPUs often runs. The assets come from the installed
`fastapi-offline` distribution (MIT; it tracks Swagger UI 5 and ReDoc 2 releases), read from its package
data: nothing is copied into this repository, and upgrading the package upgrades the pages.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Final

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response

from gateway.security.auth import DOCS_ASSET_PREFIX, DOCS_ASSETS

DOCS_PATH: Final = "/docs"
REDOC_PATH: Final = "/redoc"
OAUTH2_REDIRECT_PATH: Final = "/docs/oauth2-redirect"
_MEDIA_TYPES: Final = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}
_ASSETS = files("fastapi_offline") / "static"
# Swagger UI would otherwise ask validator.swagger.io for a badge about the document: a request to the internet.
_SWAGGER_PARAMETERS: Final = {"validatorUrl": None}
# The pages may load nothing from elsewhere. ReDoc hard-codes one outside image (its logo, from its CDN, with no
# option to turn it off): with this policy the browser refuses it before any request, and ReDoc hides it.
# Inline script and style: FastAPI's page templates start the UIs inline; blob: workers: ReDoc's search.
_PAGE_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
    )
)


def install_docs_pages(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets under DOCS_ASSET_PREFIX (create the app with docs_url=None)."""
    router = APIRouter(include_in_schema=False)
    title = app.title

    @router.get(DOCS_PATH)
    async def swagger_ui() -> HTMLResponse:
        return _confined(
            get_swagger_ui_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{title} - Swagger UI",
                oauth2_redirect_url=OAUTH2_REDIRECT_PATH,
                swagger_js_url=f"{DOCS_ASSET_PREFIX}swagger-ui-bundle.js",
                swagger_css_url=f"{DOCS_ASSET_PREFIX}swagger-ui.css",
                swagger_favicon_url=f"{DOCS_ASSET_PREFIX}favicon.png",
                swagger_ui_parameters={**(app.swagger_ui_parameters or {}), **_SWAGGER_PARAMETERS},
            )
        )

    @router.get(OAUTH2_REDIRECT_PATH)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get(REDOC_PATH)
    async def redoc() -> HTMLResponse:
        return _confined(
            get_redoc_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{title} - ReDoc",
                redoc_js_url=f"{DOCS_ASSET_PREFIX}redoc.standalone.js",
                redoc_favicon_url=f"{DOCS_ASSET_PREFIX}favicon.png",
                with_google_fonts=False,  # fonts.googleapis.com: the page's system fonts do
            )
        )

    @router.get(DOCS_ASSET_PREFIX + "{name}")
    async def asset(name: str) -> Response:
        if name not in DOCS_ASSETS:  # only the known files: no other path reaches the file system
            raise HTTPException(404, f"no documentation asset {name!r}")
        media_type = _MEDIA_TYPES[name[name.rindex(".") :]]
        headers = {"Cache-Control": "public, max-age=86400"}
        return Response(_asset_bytes(name), media_type=media_type, headers=headers)

    app.include_router(router)


@cache
def _asset_bytes(name: str) -> bytes:
    return (_ASSETS / name).read_bytes()


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = _PAGE_POLICY
    return page
