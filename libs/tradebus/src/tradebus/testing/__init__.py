"""Helpers for tests on a real bus and database (the fixtures live in `tradebus.testing.fixtures`)."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import nats
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from tradebus.bus import Publisher
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


def durables_exist(js: JetStreamContext, durables: Iterable[tuple[str, str]]) -> Callable[[], Awaitable[bool]]:
    """A `wait_for` predicate: every `(stream, durable)` exists (a service process makes them as it
    starts; a DeliverPolicy.NEW durable misses what comes before)."""
    wanted = tuple(durables)

    async def exist() -> bool:
        try:
            for stream, durable in wanted:
                await js.consumer_info(stream, durable)
        except nats.js.errors.NotFoundError:
            return False
        return True

    return exist


@asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    """Start `service` in this process (real NATS and PostgreSQL) and stop it afterwards."""
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


_ADMIN_CLIENTS: dict[str, Client] = {}


async def admin_publisher(service: Service) -> Publisher:
    """A publisher on `service`'s bus logged in as its URL's user (the fixtures' `admin`): for the
    test's own events on subjects the service under test may not publish (its inputs)."""
    url = service.settings.nats_url
    client = _ADMIN_CLIENTS.get(url)
    if client is None or client.is_closed:
        client = _ADMIN_CLIENTS[url] = await nats.connect(url)
    return Publisher(client, "test")


async def close_admin_clients() -> None:
    """Close what `admin_publisher` opened (the fixtures do, at the end of the run)."""
    clients = list(_ADMIN_CLIENTS.values())
    _ADMIN_CLIENTS.clear()
    for client in clients:
        if not client.is_closed:
            await client.close()


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
