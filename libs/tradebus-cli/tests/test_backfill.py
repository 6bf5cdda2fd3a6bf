"""`tradebus backfill` as a process against a local server speaking Binance's REST klines
endpoint (the ingest tests' fake exchange), on the test run's NATS and a fresh database."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tradebus.events import BarEvent, BarSource
from tradebus.timeframes import MINUTE_MS, datetime_to_ms, now_ms
from tradebus_ingest import synthetic

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "services" / "ingest" / "tests"))
from fake_binance import fake_binance

TRADEBUS = str(Path(sys.executable).parent / "tradebus")
SYMBOLS = ("CLIBFA", "CLIBFB")


class WallClock:
    def now_ms(self) -> int:
        return now_ms()


def _exchange() -> dict[str, list]:  # type: ignore[type-arg]
    now = now_ms()
    first = now - now % MINUTE_MS - 1_500 * MINUTE_MS
    return {
        s: list(synthetic.bars_between(3, s, first, first + 1_520 * MINUTE_MS, synthetic.start_price(s)))
        for s in SYMBOLS
    }


async def _run(nats_url: str, database_url: str, rest_url: str, days: str) -> str:
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "BINANCE_REST_URL": rest_url,
        "COLUMNS": "200",
        "TRADEBUS_RUN_DIR": "/nonexistent",
        # A window always a minute short of whole: "already stored" counts what the repair
        # examined and found, never the minutes the grace left out.
        "BINANCE_CLOSE_GRACE_S": "60",
    }
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, "backfill", "--symbols", ",".join(SYMBOLS).lower(), "--days", days,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def _bus_ids(nc: Client, symbol: str) -> list[str]:
    sub = await nc.jetstream().pull_subscribe(
        f"bars.1m.{symbol}",
        stream="BARS",
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    try:
        pending = (await sub.consumer_info()).num_pending or 0
        ids: list[str] = []
        while len(ids) < pending:
            ids += [BarEvent.model_validate_json(m.data).event_id for m in await sub.fetch(1000, timeout=5)]
        return ids
    finally:
        await sub.unsubscribe()


async def test_backfill_pages_resumes_and_publishes_every_minute_once(
    nats_url: str, database_url: str, nc: Client
) -> None:
    exchange = _exchange()
    async with fake_binance(exchange, WallClock()) as server:
        first_output = await _run(nats_url, database_url, server.rest_url, "0.5")
        first_calls = list(server.requests)
        second_output = await _run(nats_url, database_url, server.rest_url, "1")
        second_calls = server.requests[len(first_calls) :]

    assert "bars published for CLIBFA, CLIBFB (0.5 day(s)); 0 minutes were already stored" in first_output
    assert "bars published for CLIBFA, CLIBFB (1 day(s)); " in second_output
    conn = await asyncpg.connect(database_url)
    try:
        for symbol in SYMBOLS:
            rows = await conn.fetch(
                "SELECT open_time, close, transport FROM ingest.bars WHERE source = 'binance' AND symbol = $1"
                " ORDER BY open_time",
                symbol,
            )
            opens = [datetime_to_ms(r["open_time"]) for r in rows]
            served = {b.open_ms: b for b in exchange[symbol]}
            assert len(opens) >= 1439  # a day, less the minute inside the grace
            assert opens == list(range(opens[0], opens[-1] + MINUTE_MS, MINUTE_MS))  # no hole
            assert [r["close"] for r in rows] == [served[t].close for t in opens]
            assert {r["transport"] for r in rows} == {BarSource.BINANCE_REST.value}
            assert opens[-1] < now_ms() - now_ms() % MINUTE_MS  # never the running minute
            ids = await _bus_ids(nc, symbol)  # each minute once; the older half came with the second run
            assert sorted(ids, key=lambda i: int(i.rsplit(":", 1)[1])) == [f"bar:{symbol}:1m:{t}" for t in opens]

            # the first run pages through half a day; the second asks only for the older half (and new minutes)
            first_run = [c for c in first_calls if c.symbol == symbol]
            assert len(first_run) == 1 and first_run[0].limit == 1000  # 720 minutes: one page
            second_run = [c for c in second_calls if c.symbol == symbol]
            stored_by_first = (first_run[0].start_ms, first_run[0].end_ms)
            assert second_run[0].start_ms == opens[0]
            assert all(c.end_ms < stored_by_first[0] or c.start_ms > stored_by_first[1] for c in second_run)
    finally:
        await conn.close()
