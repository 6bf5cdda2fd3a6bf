"""Figures 1, 2 and 5: the six services as processes on the bench's NATS and a fresh database.

Replay (1 and 5): seeded Binance kline files are replayed by ingest at full speed through
aggregator → signal → risk; the clock runs from the first 1m bar on the bus until risk has
stored a decision (an `audit` row) for every signal — one per 5m bar per symbol. Peak RSS and
CPU seconds of every service are sampled meanwhile.

Live (2): the bench acts as ingest and publishes `mode=live` 1m bars at a fixed rate across many
symbols, consecutive minutes per symbol, so every fifth minute closes a 5m bar that the
aggregator publishes, signal turns into a signal and risk decides. Latency is measured from the
publish of that closing 1m bar to (a) the signal arriving on `signals.*` at a core subscription
of the bench and (b) risk's decision: the `recorded_at` of its audit row (PostgreSQL's `now()`,
the start of the transaction that stores the decision; same machine, same clock). Every signal
gets an audit row (NEUTRAL holds are only audited; orders and rejections are also published), so
(b) covers every decision. The first closes of each symbol warm the stack up and are not counted
(`Sizes.live_warmup_closes`); the relays get the same warm-up.
"""

from __future__ import annotations

import asyncio
import csv
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import asyncpg
import nats
from nats.aio.msg import Msg

from tradebus.bench import BenchEnv, Figure, percentile, stopwatch
from tradebus.events import BarEvent, Mode
from tradebus.settings import SERVICES
from tradebus.timeframes import MINUTE_MS, datetime_to_ms
from tradebus_cli.bench.infra import BusTraffic, bus_traffic, reset_streams
from tradebus_cli.bench.raw import Throughput, jetstream_throughput, relay_latency
from tradebus_cli.bench.stack import Infra, ServiceStack
from tradebus_ingest.synthetic import bars_between, start_price

Progress = Callable[[str], None]

REPLAY_SYMBOLS: Final = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT",
                         "ADAUSDT", "DOGEUSDT", "AVAXUSDT", "DOTUSDT", "LINKUSDT")  # fmt: skip
REPLAY_START: Final = datetime(2024, 1, 1, tzinfo=UTC)
BASE_MINUTES: Final = 5
"""Minutes per base-horizon (5m) bar: one signal, one decision each."""
SEED: Final = 7
DAY_MINUTES: Final = 1440
MB: Final = 1024 * 1024
DOWNSTREAM: Final = tuple(s for s in SERVICES if s != "ingest")

Notes = dict[str, float | str]

_DECISIONS_SQL: Final = "SELECT count(*) FROM risk.audit WHERE signal_id IS NOT NULL"


@dataclass(frozen=True, slots=True)
class Sizes:
    replay_days: int
    replay_symbols: int
    replay_cap_s: float
    live_symbols: int
    live_rate: float
    live_seconds: float
    live_warmup_closes: int = 2
    """Base-interval closes per symbol sent before the measured window and not counted: the first
    signals after a start pay one-off costs (statements prepared on each pooled connection, first
    runs of code paths, a symbol's first book and merge state), up to ~25 ms here, which a stack
    that runs for weeks pays once. The relay gets the same warm-up, also not counted."""

    @classmethod
    def of(cls, smoke: bool) -> Sizes:
        if smoke:
            return cls(replay_days=1, replay_symbols=2, replay_cap_s=30, live_symbols=20, live_rate=200, live_seconds=1)
        return cls(
            replay_days=30, replay_symbols=10, replay_cap_s=240, live_symbols=100, live_rate=200, live_seconds=30
        )


def _base_env(env: BenchEnv, database_url: str, symbols: tuple[str, ...]) -> dict[str, str]:
    return {
        "NATS_URL": env.nats_url,
        "DATABASE_URL": database_url,
        "SYMBOLS": ",".join(symbols),
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "HEARTBEAT_INTERVAL_S": "5",
        "PYTHONUNBUFFERED": "1",
    }


# ----------------------------------------------------------------------------- history files
def write_history(path: Path, symbol: str, first_ms: int, minutes: int) -> int:
    """Binance 12-column 1m klines of the seeded synthetic path; returns the bytes of one bar event."""
    sample = b""
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        last_ms = first_ms + (minutes - 1) * MINUTE_MS
        for bar in bars_between(SEED, symbol, first_ms, last_ms, start_price(symbol)):
            open_ms = bar.open_ms
            out.writerow([open_ms, bar.open, bar.high, bar.low, bar.close, bar.volume,
                          open_ms + MINUTE_MS - 1, bar.quote_volume, bar.trades, 0, 0, 0])  # fmt: skip
            if not sample:
                sample = BarEvent.of(bar, source="ingest", mode=Mode.REPLAY).model_dump_json().encode()
    return len(sample)


def write_histories(directory: Path, symbols: tuple[str, ...], days: int) -> tuple[list[Path], int]:
    """One file per symbol, written in parallel; the files and the size of a bar event in bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    first_ms = datetime_to_ms(REPLAY_START)
    paths = [directory / f"{s}-1m-{REPLAY_START:%Y-%m-%d}.csv" for s in symbols]
    with ProcessPoolExecutor(max_workers=2) as pool:
        sizes = list(
            pool.map(write_history, paths, symbols, [first_ms] * len(symbols), [days * DAY_MINUTES] * len(symbols))
        )
    return paths, max(sizes)


# ----------------------------------------------------------------------------- replay
async def _first_message(nats_url: str, subject: str) -> tuple[asyncio.Future[float], Callable[[], Awaitable[None]]]:
    """A future set to time.monotonic() when the first message on `subject` arrives."""
    nc = await nats.connect(nats_url)
    seen: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def first(_: Msg) -> None:
        if not seen.done():
            seen.set_result(time.monotonic())

    await nc.subscribe(subject, cb=first, max_msgs=1)
    await nc.flush()
    return seen, nc.close


async def _count(database_url: str, sql: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def _bus_notes(traffic: BusTraffic, bars: int, raw: Throughput, raw_cpu_s: float, pipeline_cpu_s: float) -> Notes:
    """How far the bus alone bounds the replay: the CPU its messages would cost if each moved at
    the raw baseline's cost (client and server), spread over every core."""
    per_move = raw_cpu_s / (2 * raw.count)
    floor_cpu_s = traffic.moves * per_move
    ceiling = bars * (os.cpu_count() or 1) / floor_cpu_s if floor_cpu_s else float("inf")
    return {
        "bus_published": traffic.published,
        "bus_delivered": traffic.delivered,
        "bus_moves_per_bar": round(traffic.moves / bars, 2) if bars else 0,
        "raw_cpu_us_per_move": round(per_move * 1e6, 1),
        "bus_floor_cpu_s": round(floor_cpu_s, 1),
        "pipeline_cpu_s": round(pipeline_cpu_s, 1),
        "bus_ceiling_bars_per_s": round(ceiling),
        "bus_ceiling_ratio": round(ceiling / raw.per_s, 3),
    }


async def replay(env: BenchEnv, progress: Progress) -> list[Figure]:
    """Figures `replay` and `resources`, and the raw JetStream baseline on the same bars."""
    sizes = Sizes.of(env.smoke)
    symbols = REPLAY_SYMBOLS[: sizes.replay_symbols]
    bars = sizes.replay_days * DAY_MINUTES * len(symbols)
    expected = bars // BASE_MINUTES
    progress(f"writing {bars:,} seeded 1m bars as kline files")
    files, event_bytes = await asyncio.to_thread(write_histories, env.work_dir / "history", symbols, sizes.replay_days)

    progress(f"raw nats-py: {bars:,} JetStream publishes + pull-consume with acks")
    nats_port = f"-p {urlsplit(env.nats_url).port} "
    nats_server = Infra(lambda cmd: "nats-server" in cmd and nats_port in cmd)
    nats_server.mark()
    cpu_before = time.process_time()
    raw = await jetstream_throughput(env.nats_url, bars, b"x" * event_bytes)
    raw_client_cpu_s = time.process_time() - cpu_before
    nats_server.sample()
    raw_cpu_s = raw_client_cpu_s + nats_server.cpu_s

    await reset_streams(env.nats_url)
    database_url = await env.fresh_database()
    stack = ServiceStack(_base_env(env, database_url, symbols), env.work_dir / "logs" / "replay")
    database = urlsplit(database_url).path.lstrip("/")
    poll = await asyncpg.connect(database_url)
    stack.infra["nats_server"] = nats_server
    stack.infra["postgres"] = Infra(
        lambda cmd: cmd.startswith("postgres:") and f" {database} " in cmd, exclude={poll.get_server_pid()}
    )
    try:
        progress("starting aggregator, signal, risk, telemetry, rollup")
        stack.start(DOWNSTREAM)
        await stack.wait_ready(DOWNSTREAM)
        first_bar, close_probe = await _first_message(env.nats_url, "bars.1m.>")
        stack.start(("ingest",), {
            "INGEST_SOURCE": "replay",
            "INGEST_REPLAY_FILES": ",".join(str(p) for p in files),
            "INGEST_REPLAY_SPEED": "max",
            "INGEST_LIVE": "false",
        })  # fmt: skip
        stack.mark()
        watcher = asyncio.create_task(stack.watch())
        decided, capped = 0, False
        spawned = time.monotonic()
        while decided < expected:
            await asyncio.sleep(0.5)
            if watcher.done():
                watcher.result()  # a service died: raise its log
            decided = int(await poll.fetchval(_DECISIONS_SQL))
            elapsed = time.monotonic() - spawned
            progress(f"replay: {decided:,}/{expected:,} decisions stored, {elapsed:.0f} s")
            if elapsed > sizes.replay_cap_s:
                capped = True
                break
        finished = time.monotonic()
        stack.sample()
        watcher.cancel()
        await close_probe()
        started = first_bar.result() if first_bar.done() else spawned
        pids = stack.pids()
        traffic = await bus_traffic(env.nats_url)
    finally:
        stack.stop()
        await poll.close()
    seconds = finished - started
    processed = decided * BASE_MINUTES
    cpu_s = sum(u.cpu_s for u in stack.usage.values())
    infra_cpu_s = sum(group.cpu_s for group in stack.infra.values())
    notes: Notes = {
        "bars": processed,
        "seconds": round(seconds, 1),
        "decisions": decided,
        "raw_publish_per_s": round(raw.count / raw.publish_s),
        "raw_consume_per_s": round(raw.count / raw.consume_s),
        "event_bytes": event_bytes,
        **_bus_notes(traffic, processed, raw, raw_cpu_s, cpu_s + infra_cpu_s),
    }
    if capped:
        notes["capped"] = f"stopped after {sizes.replay_cap_s:.0f} s; rate over the {processed:,} bars decided"
    resources: Notes = {
        **{f"{name}_peak_rss_mb": round(u.peak_rss / MB, 1) for name, u in stack.usage.items()},
        **{f"{name}_cpu_s": round(u.cpu_s, 1) for name, u in stack.usage.items()},
        **{f"{name}_cpu_s": round(group.cpu_s, 1) for name, group in stack.infra.items()},
        "pids": ",".join(f"{n}={p}" for n, p in pids.items()),
    }
    return [
        Figure(
            key="replay",
            label=f"Replay {sizes.replay_days} d × {len(symbols)} symbols of 1m, ingest → risk decision stored",
            value=processed / seconds,
            baseline=raw.per_s,
            baseline_label="raw nats-py JetStream publish_async + pull-consume with acks",
            unit="1m bars/s",
            goal="ratio ≥ 0.5",
            notes=notes,
        ),
        Figure(
            key="resources",
            label="CPU seconds per 1k bars, six services (peak RSS per service in notes)",
            value=cpu_s / (processed / 1000) if processed else float("inf"),
            baseline=raw_client_cpu_s / (bars / 1000),
            baseline_label="raw nats-py client CPU per 1k messages (publish + consume)",
            unit="CPU s/1k bars",
            higher_is_better=False,
            goal="report",
            notes=resources,
        ),
    ]


# ----------------------------------------------------------------------------- live latency
def _live_bars(symbols: list[str], minutes: int, first_ms: int) -> list[tuple[str, int, str, bytes, str]]:
    """(subject, trigger key, msg id, payload, trace id) in publish order: minute by minute, symbol by symbol."""
    per_symbol = {
        s: list(bars_between(SEED, s, first_ms, first_ms + (minutes - 1) * MINUTE_MS, start_price(s))) for s in symbols
    }
    out = []
    for minute in range(minutes):
        for symbol in symbols:
            event = BarEvent.of(per_symbol[symbol][minute], source="ingest", mode=Mode.LIVE)
            out.append(
                (
                    f"bars.1m.{symbol}",
                    event.data.open_ms,
                    event.msg_id,
                    event.model_dump_json().encode(),
                    event.trace_id,
                )
            )
    return out


def _summary(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "p50": round(percentile(samples, 50), 2),
        "p99": round(percentile(samples, 99), 2),
        "max": round(max(samples), 2),
    }


async def live_latency(env: BenchEnv, progress: Progress) -> list[Figure]:
    sizes = Sizes.of(env.smoke)
    symbols = [f"L{i:03d}USDT" for i in range(sizes.live_symbols)]
    per_symbol_rate = sizes.live_rate / len(symbols)
    measured = max(BASE_MINUTES, int(per_symbol_rate * sizes.live_seconds) // BASE_MINUTES * BASE_MINUTES)
    warmup = sizes.live_warmup_closes * BASE_MINUTES
    minutes = warmup + measured
    now_ms = int(time.time() * 1000)
    first_ms = (now_ms - (minutes + 60) * MINUTE_MS) // (BASE_MINUTES * MINUTE_MS) * (BASE_MINUTES * MINUTE_MS)
    measured_from_ms = first_ms + warmup * MINUTE_MS
    plan = _live_bars(symbols, minutes, first_ms)
    expected = len(symbols) * minutes // BASE_MINUTES
    warmup_s = warmup * len(symbols) / sizes.live_rate
    relay_s = measured * len(symbols) / sizes.live_rate

    progress(f"raw nats-py 3-hop relay at {sizes.live_rate:.0f} msgs/s for {warmup_s:.0f} + {relay_s:.0f} s")
    relay = await relay_latency(env.nats_url, sizes.live_rate, relay_s, warmup_s=warmup_s)
    progress(f"raw nats-py 3-hop JetStream relay at {sizes.live_rate:.0f} msgs/s")
    durable_relay = await relay_latency(env.nats_url, sizes.live_rate, relay_s, warmup_s=warmup_s, durable=True)

    await reset_streams(env.nats_url)
    database_url = await env.fresh_database()
    live_env = {**_base_env(env, database_url, tuple(symbols)), "RISK_STALE_AFTER_S": str(2 * 86400)}
    stack = ServiceStack(live_env, env.work_dir / "logs" / "live")
    sent_ns: dict[str, int] = {}
    base_bar_ns: dict[str, int] = {}
    signal_ns: dict[str, int] = {}
    exec_ns: dict[str, int] = {}
    try:
        progress("starting aggregator, signal, risk, telemetry, rollup (the bench acts as ingest)")
        stack.start(DOWNSTREAM)
        await stack.wait_ready(DOWNSTREAM)
        nc = await nats.connect(env.nats_url)
        js = nc.jetstream()

        async def on_base_bar(msg: Msg) -> None:
            base_bar_ns.setdefault(_trace_of(msg.data), time.time_ns())

        async def on_signal(msg: Msg) -> None:
            signal_ns.setdefault(_trace_of(msg.data), time.time_ns())

        async def on_exec(msg: Msg) -> None:
            exec_ns.setdefault(_trace_of(msg.data), time.time_ns())

        await nc.subscribe(f"bars.{BASE_MINUTES}m.*", cb=on_base_bar)
        await nc.subscribe("signals.*", cb=on_signal)
        await nc.subscribe("exec.>", cb=on_exec)
        await nc.flush()
        progress(f"live: {len(plan):,} bars at {sizes.live_rate:.0f}/s across {len(symbols)} symbols")
        acks = []
        start = time.monotonic()
        for i, (subject, open_ms, msg_id, payload, trace) in enumerate(plan):
            delay = start + i / sizes.live_rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if (open_ms // MINUTE_MS) % BASE_MINUTES == BASE_MINUTES - 1 and open_ms >= measured_from_ms:
                sent_ns[trace] = time.time_ns()
            acks.append(await js.publish_async(subject, payload, headers={"Nats-Msg-Id": msg_id}))
        await asyncio.gather(*acks)
        with stopwatch() as waited:
            while await _count(database_url, _DECISIONS_SQL) < expected and waited() < 60:  # noqa: ASYNC110
                await asyncio.sleep(0.25)
        await nc.close()
        decisions = await _decision_times(database_url, plan)
    finally:
        stack.stop()

    to_base_bar = [(base_bar_ns[t] - s) / 1e6 for t, s in sent_ns.items() if t in base_bar_ns]
    to_signal = [(signal_ns[t] - s) / 1e6 for t, s in sent_ns.items() if t in signal_ns]
    to_decision = [(decisions[t] - s) / 1e6 for t, s in sent_ns.items() if t in decisions]
    to_exec = [(exec_ns[t] - s) / 1e6 for t, s in sent_ns.items() if t in exec_ns]
    raw = _summary(relay)
    decision = _summary(to_decision)
    notes: Notes = {
        **{f"decision_{k}_ms": v for k, v in decision.items()},
        **{f"aggregated_{k}_ms": v for k, v in _summary(to_base_bar).items()},
        **{f"signal_{k}_ms": v for k, v in _summary(to_signal).items()},
        **{f"published_risk_event_{k}_ms": v for k, v in _summary(to_exec).items()},
        **{f"relay_{k}_ms": v for k, v in raw.items()},
        **{f"jetstream_relay_{k}_ms": v for k, v in _summary(durable_relay).items()},
        "expected_decisions": len(sent_ns),
        "warmup_decisions": expected - len(sent_ns),
    }
    if not to_decision or not relay or not durable_relay:
        raise RuntimeError(f"live latency: no samples ({notes})")
    decision_p99 = percentile(to_decision, 99)
    return [
        Figure(
            key="latency_p99",
            label=f"Live p99, {sizes.live_rate:.0f} 1m bars/s × {len(symbols)} symbols: bar published → risk decision",
            value=decision_p99,
            baseline=percentile(relay, 99),
            baseline_label="raw nats-py core 3-hop relay (3 processes), same rate",
            unit="ms",
            higher_is_better=False,
            goal="p99 ≤ 2× raw (ratio ≥ 0.5)",
            notes=notes,
        ),
        Figure(
            key="latency_durable_p99",
            label="The same p99 against hops as durable as the pipeline's",
            value=decision_p99,
            baseline=percentile(durable_relay, 99),
            baseline_label="raw nats-py 3-hop JetStream relay (durable consumer → publish, ack awaited), same rate",
            unit="ms",
            higher_is_better=False,
            goal="report",
        ),
    ]


def _trace_of(payload: bytes) -> str:
    """The envelope's trace id without decoding the whole event (it is a top-level field)."""
    marker = payload.find(b'"trace_id":"')
    return payload[marker + 12 : payload.find(b'"', marker + 12)].decode() if marker >= 0 else ""


async def _decision_times(database_url: str, plan: list[tuple[str, int, str, bytes, str]]) -> dict[str, int]:
    """trace id of the closing 1m bar → time.time_ns() of the audit row of the signal it triggered."""
    trace_by_bar = {(subject.rsplit(".", 1)[1], open_ms): trace for subject, open_ms, _, _, trace in plan}
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT signal_id, recorded_at FROM risk.audit WHERE signal_id IS NOT NULL")
    finally:
        await conn.close()
    out: dict[str, int] = {}
    for row in rows:
        _, symbol, _, bar_ms = row["signal_id"].split(":")
        trigger = (symbol, int(bar_ms) + (BASE_MINUTES - 1) * MINUTE_MS)
        if trigger in trace_by_bar:
            out[trace_by_bar[trigger]] = int(row["recorded_at"].timestamp() * 1e9)
    return out
