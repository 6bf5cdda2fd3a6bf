"""Builders shared by the telemetry tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tradebus.events import (
    Bar,
    BarSource,
    FeedStats,
    Heartbeat,
    HeartbeatEvent,
    make_bar,
    ohlc_problem,
    trace_id_for,
)

T0_MS = 1_700_000_040_000
"""A minute boundary (2023-11-14 22:14 UTC)."""


def bar(
    minute: int,
    *,
    symbol: str = "BTCUSDT",
    open_: str = "100",
    high: str = "101",
    low: str = "99",
    close: str = "100.5",
    volume: str = "2.5",
    revision: int = 0,
) -> Bar:
    """A 1m bar `minute` minutes after T0. One whose prices contradict each other cannot come off
    the bus (the model refuses it); it is built unchecked here, for telemetry's own checks."""
    prices = Decimal(open_), Decimal(high), Decimal(low), Decimal(close)
    args = (symbol, "1m", T0_MS + minute * 60_000, *prices, Decimal(volume), Decimal("250"), 7, BarSource.SYNTHETIC)
    if ohlc_problem(*prices) is None:
        return make_bar(*args, revision=revision)  # type: ignore[arg-type]
    valid = make_bar(*args[:3], *(Decimal(1),) * 4, *args[7:], revision=revision)  # type: ignore[arg-type]
    return Bar.model_construct(
        **(valid.model_dump() | dict(zip(("open", "high", "low", "close"), prices, strict=True)))
    )


def heartbeat(
    service: str,
    n: int,
    *,
    checks: dict[str, bool] | None = None,
    status: str = "ok",
    at: datetime | None = None,
    instance: str = "test",
    feeds: dict[str, FeedStats] | None = None,
) -> HeartbeatEvent:
    return HeartbeatEvent.build(
        event_id=f"heartbeat:{service}:{instance}:{n}",
        source=service,
        trace_id=trace_id_for(f"heartbeat:{service}:{instance}"),
        emitted_at=at,
        data=Heartbeat(
            service=service,
            instance=instance,
            started_at=datetime(2026, 1, 1, tzinfo=UTC),
            status=status,  # type: ignore[arg-type]
            checks=checks if checks is not None else {"bus": True, "database": True, "consumers": True},
            feeds=feeds or {},
        ),
    )
