"""The five consuming services in this process on one NATS and one database, the valid events a
forger starts from, and what the tests observe: every table of every schema, every dead letter."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import nats
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg

from tradebus.events import (
    BarSource,
    Consensus,
    Direction,
    Heartbeat,
    HeartbeatEvent,
    ModelInfo,
    Signal,
    SignalEvent,
    SignalState,
    Trade,
    TradeEvent,
    TradePlan,
    encode_bar_event,
    make_bar,
)
from tradebus.service import Service
from tradebus.testing import running, wait_for
from tradebus.timeframes import bucket_start, now_ms
from tradebus_aggregator.app import build_service as aggregator
from tradebus_aggregator.settings import AggregatorSettings
from tradebus_risk.app import build_service as risk
from tradebus_risk.settings import RiskSettings
from tradebus_rollup.app import build_service as rollup
from tradebus_rollup.settings import RollupSettings
from tradebus_signal.app import build_service as signal
from tradebus_signal.settings import SignalSettings
from tradebus_telemetry.app import build_service as telemetry
from tradebus_telemetry.settings import TelemetrySettings

SYMBOLS = ("BTCUSDT", "ETHUSDT")
SCHEMAS = ("aggregator", "signal", "risk", "telemetry", "rollup")
WALL_CLOCK_TABLES = frozenset({"rollup.eod_runs", "telemetry.readiness_snapshots"})
"""Records of when a scheduled job ran, not facts from messages: rollup's catch-up run at start
may land after the first snapshot (as in tests/chaos/canonical.py, left out)."""

CONSUMERS: dict[str, tuple[str, ...]] = {
    "bar_1m": ("aggregator", "risk", "telemetry"),
    "bar_5m": ("signal",),
    "signal": ("risk",),
    "trade": ("rollup",),
    "heartbeat": ("telemetry",),
}
"""Who consumes each kind of message (every `service.consumer(...)` registration)."""

SUBJECTS: dict[str, str] = {
    "bar_1m": "bars.1m.BTCUSDT",
    "bar_5m": "bars.5m.BTCUSDT",
    "signal": "signals.BTCUSDT",
    "trade": "exec.trade.BTCUSDT",
    "heartbeat": "telemetry.heartbeat.risk",
}


def _bar(interval: str) -> dict[str, Any]:
    """A valid live bar that closed just now."""
    open_ms = bucket_start(now_ms(), interval) - (60_000 if interval == "1m" else 300_000)
    bar = make_bar(
        "BTCUSDT",
        interval,  # type: ignore[arg-type]
        open_ms,
        Decimal("100"),
        Decimal("101"),
        Decimal("99"),
        Decimal("100.5"),
        Decimal("2"),
        Decimal("201"),
        3,
        BarSource.BINANCE_WS if interval == "1m" else BarSource.AGGREGATED,
    )
    payload, _ = encode_bar_event(bar, source="ingest" if interval == "1m" else "aggregator")
    loaded: dict[str, Any] = orjson.loads(payload)
    return loaded


def _signal() -> dict[str, Any]:
    bar_time = datetime.fromtimestamp((bucket_start(now_ms(), "5m") - 300_000) / 1000, tz=UTC)
    data = Signal(
        symbol="BTCUSDT",
        interval="5m",
        bar_time=bar_time,
        price=Decimal("100"),
        state=SignalState.BUY,
        direction=Direction.LONG,
        confidence=Decimal("0.7"),
        horizons=[],
        consensus=Consensus(
            consensus_direction=Direction.LONG, consensus_confidence=Decimal("0.7"), agreement_score=Decimal("1")
        ),
        plan=TradePlan(entry=Decimal("100"), stop=Decimal("98"), targets=[Decimal("106")], risk_reward=Decimal("3")),
        model=ModelInfo(version="fuzz", hash="0"),
    )
    event = SignalEvent.build(event_id=f"signal:BTCUSDT:5m:{uuid.uuid4()}", source="signal", trace_id="t", data=data)
    return event.model_dump(mode="json")


def _trade() -> dict[str, Any]:
    exit_time = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(minutes=1)
    data = Trade(
        trade_id=str(uuid.uuid4()),
        symbol="BTCUSDT",
        strategy="fuzz",
        direction=Direction.LONG,
        quantity=Decimal("1"),
        entry_price=Decimal("100"),
        exit_price=Decimal("101"),
        entry_time=exit_time - timedelta(hours=1),
        exit_time=exit_time,
        gross_pnl=Decimal("1"),
        fees=Decimal("0.1"),
        net_pnl=Decimal("0.9"),
        exit_reason="target",
    )
    return TradeEvent.build(event_id=f"trade:{data.trade_id}", source="risk", trace_id="t", data=data).model_dump(
        mode="json"
    )


def _heartbeat() -> dict[str, Any]:
    data = Heartbeat(service="risk", instance="fuzz", started_at=datetime.now(tz=UTC), status="ok")
    event = HeartbeatEvent.build(event_id=f"heartbeat:{uuid.uuid4()}", source="risk", trace_id="t", data=data)
    return event.model_dump(mode="json")


VALID: dict[str, Callable[[], dict[str, Any]]] = {
    "bar_1m": lambda: _bar("1m"),
    "bar_5m": lambda: _bar("5m"),
    "signal": _signal,
    "trade": _trade,
    "heartbeat": _heartbeat,
}
"""A valid event of each kind: what a forger starts from (never sent as it is)."""


@dataclass
class Stack:
    """The running services and what the tests observe of them."""

    services: dict[str, Service]
    database_url: str
    nc: Client
    letters: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dead_letters(self) -> Counter[str]:
        return Counter(letter["service"] for letter in self.letters)

    async def send(self, kind: str, payload: bytes) -> None:
        await self.nc.jetstream().publish(SUBJECTS[kind], payload, headers={"Nats-Msg-Id": str(uuid.uuid4())})

    async def until_dead_letters(self, expected: Counter[str]) -> None:
        async def arrived() -> bool:
            return self.dead_letters >= expected

        await wait_for(arrived, timeout=20.0, what=f"dead letters {dict(expected)} (have {dict(self.dead_letters)})")

    async def snapshot(self) -> dict[str, list[tuple[str, ...]]]:
        """Every row of every table of every service's schema, as text, in a stable order."""
        conn = await asyncpg.connect(self.database_url)
        try:
            tables = await conn.fetch(
                "SELECT table_schema, table_name FROM information_schema.tables"
                " WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE'",
                list(SCHEMAS),
            )
            out = {}
            for schema, table in sorted((t["table_schema"], t["table_name"]) for t in tables):
                if f"{schema}.{table}" in WALL_CLOCK_TABLES:
                    continue
                rows = await conn.fetch(f'SELECT * FROM "{schema}"."{table}"')
                out[f"{schema}.{table}"] = sorted(tuple(str(v) for v in r.values()) for r in rows)
            assert {name.split(".")[0] for name in out} == set(SCHEMAS), sorted(out)
            return out
        finally:
            await conn.close()

    async def settled(self) -> None:
        """Rollup's catch-up run at start has closed its day and published the rows it wrote (a
        snapshot taken in between would see `published_revision` change under it)."""

        async def published() -> bool:
            conn = await asyncpg.connect(self.database_url)
            try:
                return bool(
                    await conn.fetchval(
                        "SELECT EXISTS (SELECT 1 FROM rollup.eod_runs)"
                        " AND NOT EXISTS (SELECT 1 FROM rollup.daily_performance"
                        "  WHERE published_revision IS DISTINCT FROM revision)"
                        " AND NOT EXISTS (SELECT 1 FROM rollup.strategy_performance"
                        "  WHERE published_revision IS DISTINCT FROM revision)"
                    )
                )
            finally:
                await conn.close()

        await wait_for(published, what="rollup's catch-up run closed and published")

    async def all_ready(self) -> None:
        async def ready() -> bool:
            statuses = [(await s.readiness())[0] for s in self.services.values()]
            return all(status != "down" for status in statuses)

        await wait_for(ready, what="every service ready")


@asynccontextmanager
async def stack(nats_url: str, database_url: str) -> AsyncIterator[Stack]:
    """The five consuming services, started in this process, with a tap on `dlq.>`."""
    common: dict[str, Any] = {
        "nats_url": nats_url,
        "database_url": database_url,
        "symbols": SYMBOLS,
        "heartbeat_interval_s": 0.5,
    }
    services = {
        "aggregator": aggregator(AggregatorSettings(**common)),
        "signal": signal(SignalSettings(**common)),
        "risk": risk(RiskSettings(**common)),
        "telemetry": telemetry(
            TelemetrySettings(**common, telemetry_bars_linger_s=0.05, telemetry_evaluate_interval_s=3600)
        ),
        "rollup": rollup(RollupSettings(**common)),
    }
    nc = await nats.connect(nats_url)
    async with AsyncExitStack() as running_services:
        for service in services.values():
            await running_services.enter_async_context(running(service))
        observed = Stack(services, database_url, nc)

        async def on_letter(msg: Msg) -> None:
            observed.letters.append(orjson.loads(msg.data))

        await nc.jetstream().subscribe("dlq.>", cb=on_letter, ordered_consumer=True)
        await observed.all_ready()
        await observed.settled()
        try:
            yield observed
        finally:
            await nc.close()
