"""The feed's notion of now, injectable so tests can step through minute boundaries instantly."""

from __future__ import annotations

import asyncio
from typing import Protocol

from tradebus.timeframes import MINUTE_MS, now_ms


class Clock(Protocol):
    def now_ms(self) -> int: ...

    async def sleep_until(self, epoch_ms: int) -> None: ...


class WallClock:
    """UTC wall-clock time."""

    def now_ms(self) -> int:
        return now_ms()

    async def sleep_until(self, epoch_ms: int) -> None:
        await asyncio.sleep(max(0.0, (epoch_ms - self.now_ms()) / 1000))


def last_closed_minute(epoch_ms: int) -> int:
    """Open time of the newest 1m bar that has closed at `epoch_ms`."""
    return epoch_ms - epoch_ms % MINUTE_MS - MINUTE_MS
