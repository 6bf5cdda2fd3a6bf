"""The aggregator's benchmarks (called by `tradebus bench`): batch aggregation, backfill with COPY,
streaming latency — each next to a baseline measured in the same run.

- `aggregator_batch`: 30 days x 2 symbols of seeded 1m bars through `Aggregator.apply_batch` (the
  service's vectorised path, exact Decimal, Binance's zero-volume rule) into 5m..1w, in input 1m
  bars/s, against pandas `resample` (float64 OHLCV, same data; DataFrame built outside the clock).
- `backfill`: the same for 30 days x 10 symbols including writing 1m and every interval into the
  aggregator's tables (`BarRepository.save`: COPY + upsert, counts trigger), against pandas
  resample + asyncpg `copy_records_to_table` of the same rows into a plain table.
- `aggregator_stream_latency`: a running aggregator on the bench NATS; 1m bars published at a
  steady rate; 1m published -> 5m bar received, p50/p99, against a raw nats-py relay hop.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

import asyncpg
import nats
import numpy as np
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from tradebus import subjects
from tradebus.bench import BenchEnv, Figure, percentile, stopwatch
from tradebus.bus import Publisher
from tradebus.db import create_pool, migrate
from tradebus.events import Bar, BarEvent, BarSource, Mode, make_bar
from tradebus.timeframes import HIGHER_INTERVALS, MINUTE_MS, datetime_to_ms, interval_ms
from tradebus_aggregator.repository import BarRepository
from tradebus_aggregator.stream import Aggregator

_START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC, a Monday
_DAY_MINUTES = 1_440
_PANDAS_RULES = {"5m": "5min", "15m": "15min", "1h": "1h", "4h": "4h", "1d": "1D", "1w": "W-MON"}
_PANDAS_AGG = {
    "open": "first",
    "high": "max",
    "low": "min",
    "close": "last",
    "volume": "sum",
    "quote_volume": "sum",
    "trades": "sum",
}
_COLUMNS = ("symbol", "interval", "open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades")


def synthetic_minutes(symbol: str, days: int, seed: int) -> list[Bar]:
    """Seeded 1m bars of one symbol: a random walk in cents, ~2 % idle (zero-volume) minutes."""
    n = days * _DAY_MINUTES
    rng = np.random.default_rng([seed, sum(map(ord, symbol))])
    closes = 3_000_000 + np.cumsum(rng.integers(-900, 901, n))
    opens = np.concatenate(([3_000_000], closes[:-1]))
    idle = rng.random(n) < 0.02
    closes = np.where(idle, opens, closes)
    highs = np.maximum(opens, closes) + np.where(idle, 0, rng.integers(0, 400, n))
    lows = np.minimum(opens, closes) - np.where(idle, 0, rng.integers(0, 400, n))
    volumes = np.where(idle, 0, rng.integers(1, 10**9, n))  # 5 decimals
    trades = np.where(idle, 0, rng.integers(1, 900, n))
    cents, lots = Decimal("0.01"), Decimal("0.00001")
    bars = []
    columns = (opens, highs, lows, closes, volumes, trades)
    for i, (o, h, lo, c, v, t) in enumerate(zip(*(col.tolist() for col in columns), strict=True)):
        volume = v * lots
        close = c * cents
        bars.append(
            make_bar(
                symbol,
                "1m",
                _START_MS + i * MINUTE_MS,
                o * cents,
                h * cents,
                lo * cents,
                close,
                volume,
                volume * close,
                t,
                BarSource.SYNTHETIC,
            )
        )
    return bars


def _frame(bars: list[Bar]) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "open": [float(b.open) for b in bars],
            "high": [float(b.high) for b in bars],
            "low": [float(b.low) for b in bars],
            "close": [float(b.close) for b in bars],
            "volume": [float(b.volume) for b in bars],
            "quote_volume": [float(b.quote_volume) for b in bars],
            "trades": [b.trades for b in bars],
        },
        index=pd.to_datetime([b.open_ms for b in bars], unit="ms", utc=True),
    )


def _resample(frame: Any) -> dict[str, Any]:
    """pandas' OHLCV resample into every higher interval (left-labelled, weeks from Monday)."""
    return {
        iv: frame.resample(rule, label="left", closed="left").agg(_PANDAS_AGG).dropna(subset=["close"])
        for iv, rule in _PANDAS_RULES.items()
    }


async def bench(env: BenchEnv) -> list[Figure]:
    return [await _batch(env), await _backfill(env), await _stream_latency(env)]


async def _batch(env: BenchEnv) -> Figure:
    days = 2 if env.smoke else 30
    per_symbol = [synthetic_minutes(s, days, seed=1) for s in ("BTCUSDT", "ETHUSDT")]
    feed = sorted((b for bars in per_symbol for b in bars), key=lambda b: b.open_time)
    frames = [_frame(bars) for bars in per_symbol]
    with stopwatch() as ours:
        outcome = Aggregator().apply_batch(feed)
    with stopwatch() as theirs:
        resampled = [_resample(f) for f in frames]
    produced = {iv: sum(1 for _, b in outcome.bars if b.interval == iv) for iv in HIGHER_INTERVALS}
    return Figure(
        key="aggregator_batch",
        label=f"batch aggregation {days} d x 2 symbols, 1m -> 5m..1w (exact Decimal)",
        value=len(feed) / ours(),
        baseline=len(feed) / theirs(),
        baseline_label="pandas resample (float64 OHLCV)",
        unit="1m bars/s",
        notes={
            "bars_in": len(feed),
            "bars_out": sum(produced.values()),
            "pandas_bars_out": sum(len(r[iv]) for r in resampled for iv in r),
            **{f"out_{iv}": n for iv, n in produced.items()},
        },
    )


async def _backfill(env: BenchEnv) -> Figure:
    days, symbols = (2, 2) if env.smoke else (30, 10)
    dsn = await env.fresh_database()
    pool = await create_pool(dsn, schema="aggregator", max_size=2)
    try:
        await migrate(pool, "aggregator", "tradebus_aggregator.migrations")
        async with pool.acquire() as conn:
            await conn.execute(
                "CREATE TABLE public.baseline_bars (symbol text, interval text, open_time timestamptz, open numeric,"
                " high numeric, low numeric, close numeric, volume numeric, quote_volume numeric, trades bigint)"
            )
        repo, ours, theirs, rows = BarRepository(pool), 0.0, 0.0, 0
        for k in range(symbols):
            bars = synthetic_minutes(f"SYM{k}USDT", days, seed=2)
            frame = _frame(bars)
            with stopwatch() as elapsed:
                outcome = Aggregator().apply_batch(bars)
                written = [*outcome.stored, *(b for _, b in outcome.bars)]
                await repo.save(written)
            ours += elapsed()
            rows += len(written)
            with stopwatch() as elapsed:
                await _pandas_backfill(pool, bars[0].symbol, frame)
            theirs += elapsed()
        stored = await pool.fetchval("SELECT sum(bars) FROM aggregator.bar_counts")
    finally:
        await pool.close()
    minutes = days * _DAY_MINUTES * symbols
    return Figure(
        key="backfill",
        label=f"backfill {days} d x {symbols} symbols: aggregate all intervals + COPY into the aggregator's tables",
        value=minutes / ours,
        baseline=minutes / theirs,
        baseline_label="pandas resample + asyncpg copy_records_to_table into a plain table",
        unit="1m bars/s",
        goal=">= 1.0",
        notes={"rows_written": rows, "rows_stored": int(stored)},
    )


async def _pandas_backfill(pool: asyncpg.Pool, symbol: str, frame: Any) -> None:
    records: list[tuple[Any, ...]] = []
    for iv, df in {"1m": frame, **_resample(frame)}.items():
        records.extend(
            (symbol, iv, t.to_pydatetime(), Decimal(o), Decimal(h), Decimal(lo), Decimal(c), Decimal(v), Decimal(q), n)
            for t, o, h, lo, c, v, q, n in df.itertuples()
        )
    async with pool.acquire() as conn:
        await conn.copy_records_to_table("baseline_bars", schema_name="public", records=records, columns=_COLUMNS)


async def _stream_latency(env: BenchEnv) -> Figure:
    from tradebus_aggregator.app import build_service
    from tradebus_aggregator.settings import AggregatorSettings

    minutes, rate = (40, 200.0) if env.smoke else (1_500, 100.0)
    symbol = "LATENCYUSDT"
    settings = AggregatorSettings(nats_url=env.nats_url, database_url=await env.fresh_database(), symbols=(symbol,))
    service = build_service(settings)
    bars = synthetic_minutes(symbol, 2, seed=3)[:minutes]
    sent: dict[int, float] = {}
    got: list[float] = []
    loop = asyncio.get_running_loop()
    all_in = asyncio.Event()
    await service.start()
    nc = await nats.connect(env.nats_url)
    try:

        async def on_5m(msg: Msg) -> None:
            bar = BarEvent.model_validate_json(msg.data).data
            closing = bar.open_ms + interval_ms("5m") - MINUTE_MS
            if closing in sent:
                got.append(loop.time() - sent[closing])
            if len(got) >= minutes // 5:
                all_in.set()

        await nc.subscribe(subjects.bars("5m", symbol), cb=on_5m)
        events = [BarEvent.of(b, source="bench", mode=Mode.REPLAY) for b in bars]
        inputs = Publisher(nc, "bench")  # as ingest would: the aggregator itself may not publish 1m bars
        for event in events:
            started = sent[datetime_to_ms(event.data.open_time)] = loop.time()
            await inputs.publish_many(((subjects.bars("1m", symbol), event),))
            await asyncio.sleep(max(0.0, 1 / rate - (loop.time() - started)))
        with contextlib.suppress(TimeoutError):  # a shortfall shows in the notes (samples vs expected)
            await asyncio.wait_for(all_in.wait(), 10.0)
        relay = await _relay_latency(nc, minutes, rate)
    finally:
        await nc.close()
        await service.stop()
    return Figure(
        key="aggregator_stream_latency",
        label=f"streaming 1m published -> 5m bar received, p50 ({rate:g} 1m bars/s)",
        value=percentile(got, 50) * 1000,
        baseline=percentile(relay, 50) * 1000,
        baseline_label="raw nats-py relay hop, p50",
        unit="ms",
        higher_is_better=False,
        notes={
            "p99_ms": percentile(got, 99) * 1000,
            "relay_p99_ms": percentile(relay, 99) * 1000,
            "samples": len(got),
            "expected": minutes // 5,
        },
    )


async def _relay_latency(nc: NatsClient, messages: int, rate: float) -> list[float]:
    """The same hop without the aggregator: a subscriber that re-publishes each message."""
    loop = asyncio.get_running_loop()
    got: list[float] = []
    all_in = asyncio.Event()

    async def relay(msg: Msg) -> None:
        await nc.publish("bench.relay.out", msg.data)

    async def received(msg: Msg) -> None:
        got.append(loop.time() - float(msg.data))
        if len(got) >= messages:
            all_in.set()

    await nc.subscribe("bench.relay.in", cb=relay)
    await nc.subscribe("bench.relay.out", cb=received)
    for _ in range(messages):
        started = loop.time()
        await nc.publish("bench.relay.in", repr(started).encode())
        await nc.flush()
        await asyncio.sleep(max(0.0, 1 / rate - (loop.time() - started)))
    await asyncio.wait_for(all_in.wait(), 10.0)
    return got
