"""Replay throughput of the risk service: bars/s consumed AND applied on real NATS and PostgreSQL.

The streams are loaded first with a seeded replay (per symbol a random walk of 1m bars and a
dense 5m signal for every 5m bar, a BUY with a plan or a SELL now and then), then the service
starts on them from the beginning and is timed until every bar is applied, the inbox is empty
and the outbox is sent. The same-run baseline is the pure book applying the same events
in-process (no bus, no database): the ratio shows what the I/O shell costs.

Run directly: `python -m tradebus_risk.bench [days] [symbols]` (needs a PostgreSQL that may
create databases, `TRADEBUS_TEST_ADMIN_DSN`, default the local one; starts its own nats-server).
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg

from tradebus import subjects
from tradebus.bench import BenchEnv, Figure, stopwatch
from tradebus.events import (
    BarEvent,
    BarSource,
    Consensus,
    Direction,
    Envelope,
    Mode,
    ModelInfo,
    Signal,
    SignalEvent,
    SignalState,
    TradePlan,
    make_bar,
    signal_event_id,
    trace_id_for,
)
from tradebus.timeframes import MINUTE_MS, datetime_to_ms, ms_to_datetime
from tradebus_risk.app import build_service
from tradebus_risk.book import Book
from tradebus_risk.rules import decision_time
from tradebus_risk.settings import RiskSettings

T0_MS = datetime_to_ms(datetime(2024, 1, 1, tzinfo=UTC))
_CENT = Decimal("0.01")


def replay_events(days: int, symbols: list[str], seed: int = 11) -> tuple[list[BarEvent], list[SignalEvent]]:
    """Seeded 1m bars and dense 5m signals for `days` of `symbols`, each stream in event order."""
    rng = random.Random(seed)
    bars: list[BarEvent] = []
    signals: list[SignalEvent] = []
    for symbol in symbols:
        price = Decimal(100)
        bucket_close = price
        for minute in range(days * 1440):
            open_ = price
            close = max(_CENT, (open_ * Decimal(1 + rng.gauss(0, 0.002))).quantize(_CENT))
            high = max(open_, close) + Decimal(rng.randint(0, 20)) * _CENT
            low = max(_CENT, min(open_, close) - Decimal(rng.randint(0, 20)) * _CENT)
            ms = T0_MS + minute * MINUTE_MS
            bar = make_bar(symbol, "1m", ms, open_, high, low, close, Decimal(3), close * 3, 9, BarSource.REPLAY)
            bars.append(BarEvent.of(bar, source="ingest", mode=Mode.REPLAY))
            price, bucket_close = close, close
            if minute % 5 == 4:
                signals.append(dense_signal(symbol, ms - 4 * MINUTE_MS, bucket_close, rng.random()))
    return bars, signals


def dense_signal(
    symbol: str,
    bar_ms: int,
    close: Decimal,
    draw: float,
    *,
    buy: float = 0.06,
    sell: float = 0.06,
    grid: Decimal = _CENT,
) -> SignalEvent:
    """The 5m signal of the bar opening at `bar_ms`: BUY with a plan (stop 1 % below `close`,
    target 2 % above, on `grid`) when `draw` < `buy`, SELL when below `buy + sell`, else NEUTRAL."""
    if draw < buy:
        state, direction = SignalState.BUY, Direction.LONG
        stop, target = (close * Decimal("0.99")).quantize(grid), (close * Decimal("1.02")).quantize(grid)
        plan: TradePlan | None = TradePlan(entry=close, stop=stop, targets=[target], risk_reward=Decimal(2))
    elif draw < buy + sell:
        state, direction, plan = SignalState.SELL, Direction.SHORT, None
    else:
        state, direction, plan = SignalState.NEUTRAL, Direction.FLAT, None
    data = Signal(
        symbol=symbol,
        interval="5m",
        bar_time=ms_to_datetime(bar_ms),
        price=close,
        state=state,
        direction=direction,
        confidence=Decimal("0.6"),
        horizons=[],
        consensus=Consensus(consensus_direction=direction, consensus_confidence=Decimal("0.6"), agreement_score=1),
        plan=plan,
        model=ModelInfo(version="bench-1", hash="bench"),
    )
    return SignalEvent.build(
        event_id=signal_event_id(symbol, "5m", bar_ms),
        source="signal",
        trace_id=trace_id_for(f"bar:{symbol}:5m:{bar_ms}"),
        data=data,
        mode=Mode.REPLAY,
    )


def in_event_order(bars: list[BarEvent], signals: list[SignalEvent]) -> Iterator[BarEvent | SignalEvent]:
    """Both streams merged the way the service must apply them (a signal at C before bar C)."""
    keyed: list[tuple[datetime, int, str, BarEvent | SignalEvent]] = [
        (decision_time(s.data), 0, s.data.symbol, s) for s in signals
    ]
    keyed += [(b.data.open_time, 1, b.data.symbol, b) for b in bars]
    keyed.sort(key=lambda k: k[:3])
    return (event for *_, event in keyed)


def apply_in_process(bars: list[BarEvent], signals: list[SignalEvent], settings: RiskSettings) -> Book:
    """The pure book over the same replay (the baseline, and the expected final state)."""
    book = Book.fresh(settings.limits())
    wall_clock = datetime.now(tz=UTC)
    for event in in_event_order(bars, signals):
        if isinstance(event, SignalEvent):
            book.decide(event, wall_clock)
        else:
            book.apply_bar(event)
    return book


async def _publish(env: BenchEnv, events: list[Envelope]) -> None:
    import nats

    from tradebus.bus import Publisher, ensure_streams

    nc = await nats.connect(env.nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        publisher = Publisher(nc, "bench")
        for start in range(0, len(events), 5000):
            chunk = events[start : start + 5000]
            await publisher.publish_many((_subject(e), e) for e in chunk)
    finally:
        await nc.drain()


def _subject(event: Envelope) -> str:
    if isinstance(event, BarEvent):
        return subjects.bars("1m", event.data.symbol)
    assert isinstance(event, SignalEvent)
    return subjects.signals(event.data.symbol)


async def _done(pool: asyncpg.Pool, last_bar: datetime, symbols: int) -> bool:
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM symbol_state WHERE bar_applied = $1) AS applied,
                  (SELECT count(*) FROM inbox) AS staged,
                  (SELECT count(*) FROM outbox WHERE sent_at IS NULL) AS unsent""",
        last_bar,
    )
    assert row is not None
    return bool(row["applied"] == symbols and row["staged"] == 0 and row["unsent"] == 0)


async def bench(env: BenchEnv, days: int | None = None, symbol_count: int = 2) -> list[Figure]:
    """Risk replay throughput (bars/s applied, signals decided alongside) vs. the pure book."""
    days = days or (1 if env.smoke else 30)
    symbols = [f"BENCH{i}USDT" for i in range(symbol_count)]
    bars, signals = replay_events(days, symbols)
    settings = RiskSettings(
        nats_url=env.nats_url, database_url=await env.fresh_database(), heartbeat_interval_s=5, symbols=tuple(symbols)
    )
    with stopwatch() as pure:
        expected = apply_in_process(bars, signals, settings)
    bars = sorted(bars, key=lambda b: (b.data.open_time, b.data.symbol))  # as ingest publishes a replay
    await _publish(env, [*signals, *bars])
    service = build_service(settings)
    last_bar = bars[-1].data.open_time
    cpu_before = time.process_time()
    await service.start()
    try:
        with stopwatch() as elapsed:
            while not await _done(service.pool, last_bar, len(symbols)):  # noqa: ASYNC110 - polls the database
                await asyncio.sleep(0.1)
        trade_ids = {r["trade_id"] for r in await service.pool.fetch("SELECT trade_id FROM trades")}
        cash = await service.pool.fetchval("SELECT cash FROM account")
    finally:
        await service.stop()
    cpu_s = time.process_time() - cpu_before  # this process only: the service (nats-server and PostgreSQL apart)
    # The service applies every symbol's events in one global event-time order (`merge`): it must
    # book exactly what the pure book does in that order.
    expected_ids = {t.data.trade_id for t in expected.changes.trades}
    if (cash, trade_ids) != (expected.account.cash, expected_ids):
        raise AssertionError(f"service booked cash {cash}, the pure book {expected.account.cash}")
    return [
        Figure(
            key="risk_replay_bars_per_s",
            label=f"risk replay: 1m bars applied per second ({days} d x {len(symbols)} symbols, dense 5m signals)",
            value=len(bars) / elapsed(),
            baseline=len(bars) / pure(),
            baseline_label="the pure book in-process (no bus, no database)",
            unit="bars/s",
            goal="30 d x 10 symbols (432,000 bars) in well under 10 minutes",
            notes={
                "bars": len(bars),
                "signals": len(signals),
                "trades": len(trade_ids),
                "s": round(elapsed(), 2),
                "service_cpu_s": round(cpu_s, 1),
                "service_cpu_us_per_event": round(cpu_s * 1e6 / (len(bars) + len(signals)), 1),
                "process_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            },
        )
    ]


async def _main(days: int, symbol_count: int) -> None:
    from tradebus.embedded import EmbeddedNats

    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNats(Path(tmp) / "nats").start()
        admin_dsn = os.environ.get("TRADEBUS_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
        env = BenchEnv(server.url, admin_dsn, Path(tmp))
        try:
            for figure in await bench(env, days, symbol_count):
                print(f"{figure.label}: {figure.value:,.0f} {figure.unit}; {figure.notes}")
                print(f"  baseline {figure.baseline:,.0f} {figure.unit}: {figure.baseline_label}")
        finally:
            await env.drop_databases()
            server.stop()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 30, int(sys.argv[2]) if len(sys.argv) > 2 else 2))
