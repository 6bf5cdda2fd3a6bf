"""Helpers shared by the ingest tests (named uniquely: every service's tests share sys.path)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tradebus.events import Bar, BarEvent


class ManualClock:
    """A clock the test moves; the feed's sleeps end exactly when the test advances past them."""

    def __init__(self, now_ms: int) -> None:
        self._now = now_ms
        self._changed = asyncio.Condition()

    def now_ms(self) -> int:
        return self._now

    async def sleep_until(self, epoch_ms: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= epoch_ms)

    async def advance(self, ms: int) -> None:
        async with self._changed:
            self._now += ms
            self._changed.notify_all()


async def bus_events(nc: Client, subject: str) -> list[BarEvent]:
    """Every event the BARS stream holds on `subject`, in stream order (an ephemeral consumer)."""
    js = nc.jetstream()
    config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL)
    sub = await js.pull_subscribe(subject, stream="BARS", config=config)
    try:
        pending = (await sub.consumer_info()).num_pending or 0
        events: list[BarEvent] = []
        while len(events) < pending:
            for msg in await sub.fetch(min(1000, pending - len(events)), timeout=5):
                events.append(BarEvent.model_validate_json(msg.data))
        return events
    finally:
        await sub.unsubscribe()


UNREACHABLE = "127.0.0.1:1"
"""A local port nothing listens on: Binance 'cannot be reached at all', at once and without internet."""


def base_settings(nats_url: str, database_url: str) -> dict[str, object]:
    return {
        "nats_url": nats_url,
        "database_url": database_url,
        "heartbeat_interval_s": 0.2,
        "log_level": "WARNING",
        "binance_rest_url": f"http://{UNREACHABLE}",
        "binance_ws_url": f"ws://{UNREACHABLE}",
    }


def ohlcv(bar: Bar) -> tuple[Decimal, ...]:
    return (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.quote_volume, Decimal(bar.trades))
