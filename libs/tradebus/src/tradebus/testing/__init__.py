"""Helpers for tests on a real bus and database (the fixtures live in `tradebus.testing.fixtures`)."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

from tradebus.events import Bar, BarSource, make_bar
from tradebus.service import Service
from tradebus.timeframes import Interval


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `predicate` until it is true; fail the test after `timeout` seconds (generous: a loaded
    CI machine is slow, and a passing test never waits for the limit)."""
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


def read_kline_csv(path: Path, symbol: str, interval: Interval, source: BarSource) -> list[Bar]:
    """A test fixture file in Binance's 12-column kline layout (ms times; empty quote volume and
    trade count read as 0) as Bars — the test's own reading, independent of ingest's parser."""
    with path.open(newline="") as fh:
        return [
            make_bar(
                symbol,
                interval,
                int(row[0]),
                Decimal(row[1]),
                Decimal(row[2]),
                Decimal(row[3]),
                Decimal(row[4]),
                Decimal(row[5]),
                Decimal(row[7] or 0),
                int(row[8] or 0),
                source,
            )
            for row in csv.reader(fh)
            if row
        ]
