"""The API documents' pages work without internet: every asset comes from the service itself."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tradebus.apidocs import STATIC
from tradebus.embedded import free_port
from tradebus.events import BarEvent
from tradebus.service import Service
from tradebus.settings import Settings
from tradebus.testing import wait_for

PAGES = {"/docs": "text/html", "/redoc": "text/html", "/docs/asyncapi": "text/html", "/docs/asyncapi.html": "*/*"}
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|import\s+["']https?://""")
LOCAL_ASSET = re.compile(r"""["'](/docs/static/[^"']+)["']""")


def _service() -> Service:
    service = Service("demo", Settings(nats_user="admin"))
    service.publishes("bars.1m.*", BarEvent, "demo bars")
    return service


async def test_pages_reference_only_the_services_own_assets() -> None:
    transport = httpx.ASGITransport(app=_service().app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assets: set[str] = set()
        for path, accept in PAGES.items():
            page = await client.get(path, headers={"accept": accept})
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), path
            assert not EXTERNAL.search(page.text), f"{path} loads from outside: {EXTERNAL.search(page.text)}"
            found = set(LOCAL_ASSET.findall(page.text))
            assert found, f"{path} references no local asset"
            assets |= found
        for asset in sorted(assets):
            served = await client.get(asset)
            assert served.status_code == 200, asset
            assert served.content == (STATIC / asset.removeprefix("/docs/static/")).read_bytes(), asset
        document = await client.get("/docs/asyncapi")  # a script gets the document itself
    assert document.json()["channels"], document.text[:200]
    assert {"swagger-ui-bundle.js", "redoc.standalone.js", "asyncapi-standalone.js"} <= {
        a.rsplit("/", 1)[1] for a in assets
    }


@pytest.fixture
async def docs_server() -> AsyncIterator[str]:
    """The demo service's app on a real port (lifespan off: the documents need no bus or database)."""
    port = free_port()
    config = uvicorn.Config(_service().app(), host="127.0.0.1", port=port, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    async def started() -> bool:
        return bool(server.started)

    await wait_for(started, what="docs server up")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _render(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, in headless Chromium that can reach 127.0.0.1 only."""
    command = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        # the network off: every host name fails to resolve, and anything else goes to a dead proxy
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1",
        "--virtual-time-budget=15000",
        "--dump-dom",
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_pages_render_with_the_network_off(docs_server: str, tmp_path: Path) -> None:
    swagger = _render(f"{docs_server}/docs", tmp_path / "a")
    assert "/health/live" in swagger and "opblock" in swagger, swagger[:500]
    asyncapi = _render(f"{docs_server}/docs/asyncapi.html", tmp_path / "b")
    assert "bars.1m.*" in asyncapi and "demo bars" in asyncapi, asyncapi[:500]
