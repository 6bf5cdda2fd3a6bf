"""Helpers for tests on a real bus and database (the fixtures live in `tradebus.testing.fixtures`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from tradebus.service import Service


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `predicate` until it is true; fail the test after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    """Start `service` in this process (real NATS and PostgreSQL) and stop it afterwards."""
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
