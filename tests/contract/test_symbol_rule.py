"""One answer to a symbol in every service's HTTP API (`tradebus.symbols`): every route that
takes a symbol documents the 404 in its OpenAPI, answers an unknown symbol with 404 naming the
known ones, and a configured symbol it holds no data for with 200 and an empty result."""

from __future__ import annotations

import importlib
from typing import Any

import httpx
import pytest

from tradebus.service import Service
from tradebus.settings import SERVICES
from tradebus.testing import running

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _build(name: str, **settings: Any) -> Service:
    app = importlib.import_module(f"tradebus_{name}.app")
    module = importlib.import_module(f"tradebus_{name}.settings")
    settings_class = next(v for k, v in vars(module).items() if k.lower() == f"{name}settings")
    return app.build_service(settings_class(symbols=SYMBOLS, **settings))  # type: ignore[no-any-return]


def _symbol_routes(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation that takes a symbol, in its query or its body."""
    found = []
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            in_query = any(p["name"] == "symbol" for p in operation.get("parameters", []))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ref = body.get("$ref", "").rsplit("/", 1)[-1]
            in_body = "symbol" in openapi.get("components", {}).get("schemas", {}).get(ref, {}).get("properties", {})
            if in_query or in_body:
                found.append((method, path, operation))
    return found


@pytest.mark.parametrize("name", SERVICES)
async def test_every_symbol_route_documents_and_answers_the_rule(name: str) -> None:
    app = _build(name, nats_user="admin").app()
    routes = _symbol_routes(app.openapi())
    for method, path, operation in routes:
        assert "404" in operation["responses"], f"{name} {method.upper()} {path} does not document the 404"
        assert "SYMBOLS" in operation["responses"]["404"]["description"]
    transport = httpx.ASGITransport(app=app)  # not started: the symbol is checked before any storage is read
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for method, path, _ in routes:
            if method == "get":
                answer = await client.get(path, params={"symbol": "nosuchusdt"})
            else:
                answer = await client.request(method, path, json={"symbol": "nosuchusdt"})
            assert answer.status_code == 404, (name, path, answer.text)
            assert answer.json()["detail"] == "unknown symbol NOSUCHUSDT; this stack knows BTCUSDT, ETHUSDT (SYMBOLS)"


@pytest.mark.parametrize("name", ["aggregator", "signal", "risk"])
async def test_a_configured_symbol_without_data_answers_200_empty(
    name: str, private_nats_url: str, database_url: str
) -> None:
    service = _build(name, nats_url=private_nats_url, database_url=database_url)
    routes = _symbol_routes(service.app().openapi())
    assert routes
    async with running(service):
        transport = httpx.ASGITransport(app=service.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for method, path, _ in routes:
                if method == "get":
                    answer = await client.get(path, params={"symbol": "ethusdt"})
                else:
                    answer = await client.request(method, path, json={"symbol": "ethusdt"})
                assert answer.status_code == 200, (name, path, answer.text)
                assert answer.json() in ([], None), (name, path, answer.text)


def test_the_routes_that_take_a_symbol() -> None:
    """Fails when a route taking a symbol is added or lost without this list (and the rule) following."""
    routes = {
        f"{name} {method.upper()} {path}"
        for name in SERVICES
        for method, path, _ in _symbol_routes(_build(name, nats_user="admin").app().openapi())
    }
    assert routes == {
        "aggregator GET /v1/bars",
        "signal POST /v1/signal",
        "signal GET /v1/signals/latest",
        "risk GET /v1/positions",
        "risk GET /v1/trades",
    }
