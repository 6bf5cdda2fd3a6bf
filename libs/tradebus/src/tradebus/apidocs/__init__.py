"""The API documents' pages (Swagger UI, ReDoc, AsyncAPI), served from this package.

FastAPI's and FastStream's pages load their scripts and styles from public CDNs, so on a machine
without internet they render blank. The same files, pinned, are vendored under `static/` (see
`static/VENDORED.md` for versions, sources and licences) and served at `/docs/static/…`: the pages
reference nothing outside the service.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC: Final = Path(__file__).parent / "static"
STATIC_URL: Final = "/docs/static"
FAVICON: Final = f"{STATIC_URL}/favicon-32x32.png"


def mount(app: FastAPI, title: str, asyncapi: Callable[[], Any]) -> None:
    """Add `/docs` (Swagger UI), `/redoc`, `/docs/asyncapi` (JSON, or the page for a browser) and
    `/docs/asyncapi.html` to `app`, which must be built with `docs_url=None, redoc_url=None`.
    `asyncapi()` returns the FastStream specification."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="docs-static")
    page: dict[str, Any] = {"openapi_url": app.openapi_url or "/openapi.json", "title": f"{title} API"}
    js, css = f"{STATIC_URL}/swagger-ui-bundle.js", f"{STATIC_URL}/swagger-ui.css"
    swagger = get_swagger_ui_html(**page, swagger_js_url=js, swagger_css_url=css, swagger_favicon_url=FAVICON).body
    redoc_js = f"{STATIC_URL}/redoc.standalone.js"
    redoc = get_redoc_html(**page, redoc_js_url=redoc_js, redoc_favicon_url=FAVICON, with_google_fonts=False).body
    app.add_api_route("/docs", lambda: HTMLResponse(swagger), include_in_schema=False)
    app.add_api_route("/redoc", lambda: HTMLResponse(redoc), include_in_schema=False)

    @app.get("/docs/asyncapi", tags=["docs"], description="The AsyncAPI document; a browser gets the page.")
    async def asyncapi_document(request: Request) -> Response:
        if _wants_html(request.headers.get("accept", "")):
            return HTMLResponse(asyncapi_html(title, asyncapi().to_jsonable()))
        return JSONResponse(asyncapi().to_jsonable())

    @app.get("/docs/asyncapi.html", tags=["docs"], response_class=HTMLResponse)
    async def asyncapi_page() -> str:
        return asyncapi_html(title, asyncapi().to_jsonable())


def _wants_html(accept: str) -> bool:
    """A browser asks for `text/html` first; httpx, curl and scripts send `*/*` or JSON."""
    first = accept.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return first == "text/html"


def asyncapi_html(title: str, document: dict[str, Any]) -> str:
    """The AsyncAPI React standalone page rendering `document`, with every asset served locally."""
    # "</" inside a <script> would end it early; JSON allows the escaped form.
    config = json.dumps(
        {
            "schema": document,
            "config": {"show": {"sidebar": True}, "sidebar": {"showServers": "byDefault"}},
        }
    ).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>{title} AsyncAPI</title>
  <link rel="icon" type="image/png" href="{FAVICON}">
  <link rel="stylesheet" href="{STATIC_URL}/asyncapi.min.css">
</head>
<body>
  <div id="asyncapi"></div>
  <script src="{STATIC_URL}/asyncapi-standalone.js"></script>
  <script>AsyncApiStandalone.render({config}, document.getElementById("asyncapi"));</script>
</body>
</html>"""
