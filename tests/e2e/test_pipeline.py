"""End to end: bars in at ingest, performance out at rollup — six real processes, real NATS and PostgreSQL.

A seeded two-day history for two symbols is written as Binance kline CSV files, replayed by
ingest, aggregated, turned into signals and paper trades, and rolled up per day. The test checks
each hop against an independent reckoning: bar counts per interval, one signal per 5m bar, the
trades on the bus equal the trades risk reports, and the daily rows equal the trades summed by
exit date. Then it feeds garbage to every consumer and checks it lands in the DLQ while every
service stays ready.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import nats
import orjson
import pytest

from tradebus.embedded import free_port
from tradebus.settings import SERVICES
from tradebus.testing import wait_for

pytestmark = pytest.mark.e2e

SYMBOLS = ("BTCUSDT", "ETHUSDT")
START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
DAYS = 2
MINUTES = DAYS * 1440


def _write_history(path: Path, symbol: str, seed: int, price: Decimal) -> None:
    """Binance 12-column klines: trending regimes of a few hours with noise, ms open times."""
    rng = random.Random(f"{seed}:{symbol}")
    start_ms = int(START.timestamp() * 1000)
    cent = Decimal("0.01")
    drift = 0.0
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        for minute in range(MINUTES):
            if minute % 240 == 0:
                drift = rng.choice((-1, 1)) * rng.uniform(0.0003, 0.0009)
            open_ = price
            steps = [open_ * Decimal(str(1 + drift + rng.gauss(0, 0.0006))) for _ in range(3)]
            close = steps[-1].quantize(cent)
            high = max(open_, *steps).quantize(cent) + cent
            low = min(open_, *steps).quantize(cent) - cent
            volume = Decimal(str(round(rng.uniform(1, 50), 5)))
            quote = (volume * close).quantize(Decimal("0.00001"))
            open_ms = start_ms + minute * 60_000
            out.writerow(
                [open_ms, open_, high, low, close, volume, open_ms + 59_999, quote, rng.randint(10, 500), 0, 0, 0]
            )
            price = close


@pytest.fixture
def history(tmp_path: Path) -> list[Path]:
    files = []
    for i, (symbol, price) in enumerate(zip(SYMBOLS, (Decimal("30000.00"), Decimal("2000.00")), strict=True)):
        path = tmp_path / f"{symbol}-1m-2024-03-04.csv"
        _write_history(path, symbol, seed=7 + i, price=price)
        files.append(path)
    return files


@pytest.fixture
def stack(private_nats_url: str, database_url: str, history: list[Path], tmp_path: Path) -> Iterator[dict[str, str]]:
    """The six services as real processes, stopped with SIGTERM at the end."""
    ports = {name: free_port() for name in SERVICES}
    env = {
        **os.environ,
        "NATS_URL": private_nats_url,
        "DATABASE_URL": database_url,
        "SYMBOLS": ",".join(SYMBOLS),
        "INGEST_SOURCE": "replay",
        "INGEST_REPLAY_FILES": ",".join(str(p) for p in history),
        "INGEST_REPLAY_SPEED": "max",
        "INGEST_LIVE": "false",
        "HEARTBEAT_INTERVAL_S": "1",
        "TRADEBUS_API_TOKEN": "e2e-token",
        "LOG_LEVEL": "INFO",
        **{f"TRADEBUS_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in SERVICES:
        with (logs / f"{name}.log").open("wb") as log:
            procs[name] = subprocess.Popen([sys.executable, "-m", f"tradebus_{name}"], env=env, stdout=log, stderr=log)
    try:
        yield {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for name, proc in procs.items():
            try:
                # uvicorn re-raises the SIGTERM it handled once shutdown is complete
                assert proc.wait(30) in (0, -signal.SIGTERM), f"{name} exited with {proc.returncode}"
                assert b'"service stopped"' in (logs / f"{name}.log").read_bytes(), f"{name} did not shut down cleanly"
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError(f"{name} did not stop on SIGTERM within 30 s") from None


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def _all_ready(http: httpx.AsyncClient, urls: dict[str, str]) -> bool:
    for url in urls.values():
        try:
            if (await http.get(f"{url}/health/ready")).status_code != 200:
                return False
        except httpx.TransportError:
            return False
    return True


async def _collect(nats_url: str, subject: str, seconds: float) -> list[dict[str, object]]:
    """Every message stored on `subject` so far (an ordered ephemeral consumer from the start)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    sub = await js.subscribe(subject, ordered_consumer=True)
    out: list[dict[str, object]] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=seconds)
            out.append(orjson.loads(msg.data))
    except nats.errors.TimeoutError:
        pass
    finally:
        await nc.close()
    return out


async def test_bars_in_rollup_out(stack: dict[str, str], http: httpx.AsyncClient, private_nats_url: str) -> None:
    nats_url = private_nats_url
    await wait_for(lambda: _all_ready(http, stack), timeout=90, what="all six services ready")

    # aggregator: every 1m bar stored, every higher bar built from it
    async def aggregated() -> bool:
        meta = (await http.get(f"{stack['aggregator']}/v1/meta/instruments")).json()
        counts = {i["symbol"]: i["bars"] for i in meta["instruments"]}
        return all(counts.get(s, {}).get("1m") == MINUTES and counts[s].get("1d") == DAYS for s in SYMBOLS)

    await wait_for(aggregated, timeout=120, what="every 1m bar aggregated")
    meta = (await http.get(f"{stack['aggregator']}/v1/meta/instruments")).json()
    for instrument in meta["instruments"]:
        assert instrument["bars"]["5m"] == MINUTES // 5
        assert instrument["bars"]["15m"] == MINUTES // 15
        assert instrument["bars"]["1h"] == MINUTES // 60
        assert instrument["bars"]["4h"] == MINUTES // 240

    # signal: one per closed 5m bar, dense
    async def signalled() -> bool:
        return len(await _collect(nats_url, "signals.>", 0.5)) == len(SYMBOLS) * MINUTES // 5

    await wait_for(signalled, timeout=120, what="one signal per 5m bar")

    # risk: the trades on the bus are the trades risk reports
    async def trades_settled() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        bus = [e["data"] for e in await _collect(nats_url, "exec.trade.>", 0.5)]
        api = (await http.get(f"{stack['risk']}/v1/trades", params={"limit": 1000})).json()
        return bus, api if isinstance(api, list) else api["trades"]

    previous: list[dict[str, object]] | None = None

    async def stable() -> bool:
        nonlocal previous
        bus, api = await trades_settled()
        done = previous is not None and len(bus) == len(previous) and len(api) == len(bus)
        previous = bus
        return done

    await wait_for(stable, timeout=60, what="trades settled")
    trades, api_trades = await trades_settled()
    assert trades, "a two-day trending history produced no paper trade"
    assert {t["trade_id"] for t in trades} == {t["trade_id"] for t in api_trades}

    # rollup: daily rows equal the trades summed by exit date
    expected: dict[date, list[Decimal]] = defaultdict(list)
    for trade in trades:
        day = datetime.fromisoformat(str(trade["exit_time"]).replace("Z", "+00:00")).date()
        expected[day].append(Decimal(str(trade["net_pnl"])))

    async def rolled_up() -> bool:
        rows = (
            await http.get(f"{stack['rollup']}/v1/performance/daily", params={"from": "2024-03-01", "to": "2024-03-31"})
        ).json()
        rows = rows if isinstance(rows, list) else rows["days"]
        got = {date.fromisoformat(r["day"]): (r["trades"], Decimal(r["net_pnl"])) for r in rows}
        want = {d: (len(v), sum(v, Decimal(0))) for d, v in expected.items()}
        return got == want

    await wait_for(rolled_up, timeout=60, what="daily rollup equal to the trades")
    daily_events = await _collect(nats_url, "rollups.daily", 0.5)
    assert {e["data"]["day"] for e in daily_events} >= {d.isoformat() for d in expected}

    # a malformed message on every consumed subject goes to dlq.<service>; nobody dies
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for subject in ("bars.1m.BTCUSDT", "bars.5m.BTCUSDT", "signals.BTCUSDT", "exec.trade.BTCUSDT"):
        await js.publish(subject, b'{"event_id": "garbage"', headers={"Nats-Msg-Id": f"garbage:{subject}"})
    await nc.close()

    async def dead_lettered() -> bool:
        services = {e["service"] for e in await _collect(nats_url, "dlq.>", 0.5)}
        return services >= {"aggregator", "signal", "risk", "telemetry", "rollup"}

    await wait_for(dead_lettered, timeout=30, what="garbage dead-lettered by every consumer")
    await asyncio.sleep(1)
    assert await _all_ready(http, stack)
