"""The services' HTTP APIs the console reads (and the one call it forwards: risk reset).

Every read answers None when the service does not (the page shows what it has and says what is
missing); nothing here raises into the bus handling.
"""

from __future__ import annotations

from typing import Any

import httpx

from tradebus.logging import get_logger
from tradebus_console.settings import ConsoleSettings

log = get_logger(__name__)


class Upstream:
    def __init__(self, settings: ConsoleSettings) -> None:
        self.urls = {
            "aggregator": settings.console_aggregator_url.rstrip("/"),
            "risk": settings.console_risk_url.rstrip("/"),
            "telemetry": settings.console_telemetry_url.rstrip("/"),
            "rollup": settings.console_rollup_url.rstrip("/"),
        }
        self.http = httpx.AsyncClient(timeout=settings.console_upstream_timeout_s)

    async def get(self, service: str, path: str, **params: Any) -> Any:
        """The JSON body of a 200 answer, else None (logged)."""
        try:
            response = await self.http.get(f"{self.urls[service]}{path}", params=params)
        except httpx.HTTPError as exc:
            log.warning("service API unreachable", service=service, path=path, error=repr(exc))
            return None
        if response.status_code != 200:
            log.warning("service API refused", service=service, path=path, status=response.status_code)
            return None
        return response.json()

    async def forward(self, method: str, service: str, path: str, **kwargs: Any) -> httpx.Response:
        """The service's own answer, status and body (the page shows it as it is)."""
        return await self.http.request(method, f"{self.urls[service]}{path}", **kwargs)

    async def close(self) -> None:
        await self.http.aclose()
