"""Asking the running services how they are: `/health/ready` of each, telemetry's `/v1/readiness`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from pydantic import ValidationError

from tradebus.events import Readiness, ReadinessStatus

PROBE_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    service: str
    url: str
    code: int | None
    status: str
    failing: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.code == 200


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """Telemetry's verdict, or why it could not be had."""

    readiness: Readiness | None
    error: str = ""

    @property
    def usable(self) -> bool:
        """READY or DEGRADED: the stack works (perhaps on offline data)."""
        return self.readiness is not None and self.readiness.status != ReadinessStatus.BLOCKED


def _failing_checks(body: Any) -> list[str]:
    checks = body.get("checks", {}) if isinstance(body, dict) else {}
    return [
        f"{name}: {check.get('detail', '')}".rstrip(": ")
        for name, check in checks.items()
        if isinstance(check, dict) and not check.get("ok", False)
    ]


async def probe_ready(client: httpx.AsyncClient, service: str, url: str) -> ServiceHealth:
    try:
        response = await client.get(f"{url}/health/ready")
    except httpx.HTTPError as exc:
        return ServiceHealth(service, url, None, f"unreachable ({type(exc).__name__})")
    try:
        body = response.json()
    except ValueError:
        body = {}
    status = body.get("status", "?") if isinstance(body, dict) else "?"
    return ServiceHealth(service, url, response.status_code, str(status), _failing_checks(body))


async def probe_all(client: httpx.AsyncClient, urls: Mapping[str, str]) -> list[ServiceHealth]:
    return list(await asyncio.gather(*(probe_ready(client, name, url) for name, url in urls.items())))


async def fetch_readiness(client: httpx.AsyncClient, telemetry_url: str) -> ReadinessReport:
    try:
        response = await client.get(f"{telemetry_url}/v1/readiness")
    except httpx.HTTPError as exc:
        return ReadinessReport(None, f"telemetry unreachable at {telemetry_url} ({type(exc).__name__})")
    if response.status_code != 200:
        return ReadinessReport(None, f"telemetry answered HTTP {response.status_code}")
    try:
        return ReadinessReport(Readiness.model_validate_json(response.content))
    except ValidationError as exc:
        return ReadinessReport(None, f"unexpected readiness document: {exc.errors()[0]['msg']}")


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=PROBE_TIMEOUT_S)
