"""The console's live push: bus event → delta on a browser's stream, and the console's CPU per event.

The console runs as a real process on the bench's NATS (as its own user) with a Redis of its own
when `redis-server` is installed; ten SSE clients stay connected. The bench publishes `mode=live`
1m bars at the live bench rate (200/s, `tradebus_cli.bench.pipeline`) with a signal after every
fifth, on core NATS, and times each from its publish to its delta on the first client. The
same-run baseline is a raw nats-py core subscription in the bench receiving the same messages.
CPU per event is the console process's user+sys seconds over the run, less the same span idle,
divided by the events; its baseline is `LiveState.apply` plus encoding in-process (no bus, no HTTP).

Run directly: `python -m tradebus_console.bench` (starts its own nats-server).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Final

import httpx
import nats
import orjson
from nats.aio.msg import Msg

from tradebus.bench import BenchEnv, Figure, percentile
from tradebus.embedded import free_port
from tradebus.events import (
    BarEvent,
    BarSource,
    Consensus,
    Direction,
    Envelope,
    HorizonSignal,
    ModelInfo,
    Signal,
    SignalEvent,
    SignalState,
    make_bar,
    signal_event_id,
)
from tradebus.natsauth import strip_userinfo
from tradebus.timeframes import MINUTE_MS, datetime_to_ms, ms_to_datetime
from tradebus_console.hub import sse
from tradebus_console.state import LiveState

RATE: Final = 200.0
CLIENTS: Final = 10
SYMBOLS: Final = tuple(f"BENCH{i}USDT" for i in range(20))
UPSTREAMS: Final = ("aggregator", "risk", "telemetry", "rollup")


def plan(seconds: float) -> list[tuple[str, str, Envelope]]:
    """(subject, key, event) at RATE per second: 1m bars across SYMBOLS, a signal after every 5th bar."""
    start_ms = (datetime_to_ms(ms_to_datetime(int(time.time() * 1000))) // (5 * MINUTE_MS) - 12) * 5 * MINUTE_MS
    out: list[tuple[str, str, Envelope]] = []
    price = Decimal("100.00")
    for n in range(int(seconds * RATE)):
        symbol = SYMBOLS[n % len(SYMBOLS)]
        minute = n // len(SYMBOLS)
        if n % 6 == 5:
            event: Envelope = _signal(symbol, start_ms + minute * MINUTE_MS, price)
            out.append((f"signals.{symbol}", event.event_id, event))
            continue
        ms = start_ms + minute * MINUTE_MS
        bar = make_bar(
            symbol, "1m", ms, price, price + 1, price - 1, price, Decimal(3), price * 3, 9, BarSource.BINANCE_WS
        )
        out.append((f"bars.1m.{symbol}", f"{symbol}|{bar.open_time.isoformat()}", BarEvent.of(bar, source="ingest")))
    return out


def _signal(symbol: str, bar_ms: int, price: Decimal) -> SignalEvent:
    horizons = [
        HorizonSignal(
            interval=i, direction=Direction.LONG, strength=Decimal("0.5"), confidence=Decimal("0.6"), bars=300
        )
        for i in ("5m", "15m", "1h", "4h")
    ]
    return SignalEvent.build(
        event_id=signal_event_id(symbol, "5m", bar_ms) + f":{time.monotonic_ns()}",
        source="signal",
        trace_id=f"bench-{bar_ms}",
        data=Signal(
            symbol=symbol, interval="5m", bar_time=ms_to_datetime(bar_ms), price=price, state=SignalState.BUY,
            direction=Direction.LONG, confidence=Decimal("0.6"), horizons=horizons,
            consensus=Consensus(consensus_direction=Direction.LONG, consensus_confidence=Decimal("0.6"),
                                agreement_score=Decimal("0.75")),
            explanation="bench " * 60, model=ModelInfo(version="bench", hash="0" * 8),
        ),
    )  # fmt: skip


def delta_key(delta: dict[str, object]) -> str | None:
    data = delta.get("data")
    if not isinstance(data, dict):
        return None
    if delta.get("kind") == "bar":
        return f"{data['symbol']}|{str(data['open_time']).replace('Z', '+00:00')}"
    if delta.get("kind") == "signal":
        return str(data["event_id"])
    return None


@dataclass
class ConsoleProcess:
    process: subprocess.Popen[bytes]
    url: str

    def cpu_s(self) -> float:
        """User + system CPU seconds of the console so far (/proc: no psutil needed)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spawn(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tradebus_console"], env=env, stdout=log, stderr=log)


@contextlib.asynccontextmanager
async def console_process(nats_url: str, work_dir: Path) -> AsyncIterator[ConsoleProcess]:
    redis = None
    with contextlib.suppress(FileNotFoundError):
        from tradebus.testing.redisserver import RedisServer

        redis = RedisServer(work_dir / "console-redis").start()
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": strip_userinfo(nats_url),
        "REDIS_URL": redis.url if redis else f"redis://127.0.0.1:{free_port()}/0",
        "TRADEBUS_CONSOLE_PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "SYMBOLS": ",".join(SYMBOLS),
        **{f"CONSOLE_{s.upper()}_URL": f"http://127.0.0.1:{free_port()}" for s in UPSTREAMS},  # none answers
    }
    log = (work_dir / "console-bench.log").open("wb")
    process = _spawn(env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{url}/health/live")).status_code == 200:
                        break
                if process.poll() is not None:
                    raise RuntimeError(f"the console exited with {process.returncode}; see {log.name}")
                await asyncio.sleep(0.1)
        yield ConsoleProcess(process, url)
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        if redis is not None:
            redis.stop()


async def _client(http: httpx.AsyncClient, url: str, seen: dict[str, float] | None, ready: asyncio.Event) -> None:
    async with http.stream("GET", f"{url}/v1/console/stream") as response:
        async for line in response.aiter_lines():
            if line.startswith("event: snapshot"):
                ready.set()
            elif seen is not None and line.startswith('data: {"kind"'):
                key = delta_key(orjson.loads(line[6:]))
                if key is not None:
                    seen.setdefault(key, time.perf_counter())


def in_process_cpu_us(events: list[tuple[str, str, Envelope]]) -> float:
    """The baseline: decode, apply and encode each event without a bus or HTTP (µs CPU per event)."""
    payloads = [(type(e), e.model_dump_json().encode()) for _, _, e in events]
    state = LiveState()
    started = time.process_time()
    for model, payload in payloads:
        delta = state.apply(model.model_validate_json(payload))
        if delta is not None:
            sse("delta", delta)
    return (time.process_time() - started) / len(payloads) * 1e6


async def bench(env: BenchEnv) -> list[Figure]:
    seconds = 2.0 if env.smoke else 30.0
    events = plan(seconds)
    sent: dict[str, float] = {}
    raw: dict[str, float] = {}
    pushed: dict[str, float] = {}
    nc = await nats.connect(env.nats_url)

    async def on_raw(msg: Msg) -> None:
        event = orjson.loads(msg.data)
        data = event["data"]
        key = event["event_id"] if msg.subject.startswith("signals.") else f"{data['symbol']}|{data['open_time']}"
        raw.setdefault(key.replace("Z", "+00:00") if "|" in key else key, time.perf_counter())

    await nc.subscribe("bars.1m.*", cb=on_raw)
    await nc.subscribe("signals.*", cb=on_raw)
    with tempfile.TemporaryDirectory(dir=env.work_dir) as scratch:
        async with console_process(env.nats_url, Path(scratch)) as console, httpx.AsyncClient(timeout=None) as http:
            readies = [asyncio.Event() for _ in range(CLIENTS)]
            tasks = [asyncio.create_task(_client(http, console.url, pushed if i == 0 else None, readies[i]))
                     for i in range(CLIENTS)]  # fmt: skip
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
            idle_before = console.cpu_s()
            await asyncio.sleep(seconds)
            idle_s = console.cpu_s() - idle_before
            cpu_before = console.cpu_s()
            start = time.perf_counter()
            for i, (subject, key, event) in enumerate(events):
                delay = start + i / RATE - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent[key] = time.perf_counter()
                await nc.publish(subject, event.model_dump_json().encode())
            deadline = time.perf_counter() + 10
            while len(pushed) < len(events) and time.perf_counter() < deadline:  # noqa: ASYNC110 - counts arrivals
                await asyncio.sleep(0.05)
            busy_s = console.cpu_s() - cpu_before
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    await nc.close()
    latencies = [(pushed[k] - sent[k]) * 1000 for k in sent if k in pushed]
    raw_latencies = [(raw[k] - sent[k]) * 1000 for k in sent if k in raw]
    if len(latencies) < len(events):
        raise AssertionError(f"only {len(latencies)} of {len(events)} events reached the stream")
    cpu_us = max(0.0, busy_s - idle_s) / len(events) * 1e6
    notes: dict[str, float | str] = {
        "events": len(events),
        "clients": CLIENTS,
        "p50_ms": round(percentile(latencies, 50), 3),
        "raw_p50_ms": round(percentile(raw_latencies, 50), 3),
        "raw_p99_ms": round(percentile(raw_latencies, 99), 3),
    }
    return [
        Figure(
            key="console_push_p99",
            label=f"Live p99, {RATE:.0f} events/s (1m bars + signals): bus → delta on an SSE client ({CLIENTS} open)",
            value=percentile(latencies, 99),
            baseline=percentile(raw_latencies, 99),
            baseline_label="raw nats-py core subscriber of the same messages, same run",
            unit="ms",
            higher_is_better=False,
            notes=notes,
        ),
        Figure(
            key="console_cpu_per_event",
            label=f"Console CPU per event at {RATE:.0f}/s with {CLIENTS} SSE clients (idle CPU subtracted)",
            value=cpu_us,
            baseline=in_process_cpu_us(events),
            baseline_label="LiveState.apply + SSE encoding in-process (no bus, no HTTP)",
            unit="µs",
            higher_is_better=False,
            notes={"busy_cpu_s": round(busy_s, 3), "idle_cpu_s": round(idle_s, 3)},
        ),
    ]


async def _main() -> None:
    from tradebus_cli.bench.infra import private_nats

    with tempfile.TemporaryDirectory() as work, private_nats(Path(work)) as nats_url:
        for figure in await bench(BenchEnv(nats_url=nats_url, admin_dsn="", work_dir=Path(work))):
            print(figure)


if __name__ == "__main__":
    asyncio.run(_main())
