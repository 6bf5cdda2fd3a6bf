"""The console's HTTP routes that need no bus: clear errors for bad input, the token never kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from consoleproc import dead_url

from tradebus.embedded import free_port
from tradebus_console.app import create
from tradebus_console.settings import ConsoleSettings


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = ConsoleSettings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        console_aggregator_url=dead_url(),
        console_risk_url=dead_url(),
    )
    app = create(settings).service.app()  # no lifespan: the routes alone
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as http:
        yield http


async def test_the_page_and_its_files_are_served_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert b"lightweight-charts.standalone.production.js" in page.content
    chart = await client.get("/static/vendor/lightweight-charts.standalone.production.js")
    assert chart.status_code == 200 and b"Lightweight Charts\xe2\x84\xa2 v5.1.0" in chart.content
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/settings.py", "/static/vendor/"):
        assert (await client.get(path)).status_code == 404, path


async def test_a_symbol_or_interval_the_chart_cannot_have_gets_a_clear_answer(client: httpx.AsyncClient) -> None:
    bad_interval = await client.get("/v1/console/bars", params={"symbol": "BTCUSDT", "interval": "2m"})
    assert bad_interval.status_code == 422
    assert bad_interval.json()["detail"] == "unknown interval '2m': one of 1m 5m 15m 1h 4h 1d 1w"
    bad_symbol = await client.get("/v1/console/bars", params={"symbol": "<b>x</b>", "interval": "1h"})
    assert bad_symbol.status_code == 422 and "upper-case letters and digits" in bad_symbol.json()["detail"]
    unanswered = await client.get("/v1/console/bars", params={"symbol": "BTCUSDT", "interval": "1h"})
    assert unanswered.status_code == 502 and "aggregator did not answer" in unanswered.json()["detail"]


async def test_risk_reset_needs_the_callers_token_and_forwards_it_only(client: httpx.AsyncClient) -> None:
    missing = await client.post("/v1/console/risk/reset")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    unreachable = await client.post("/v1/console/risk/reset", headers={"Authorization": "Bearer admin-token"})
    assert unreachable.status_code == 502 and "admin-token" not in unreachable.text
