"""The position safety check on start, with risk on real NATS and PostgreSQL: two positions are
open when risk stops; meanwhile one symbol's price runs 60 % up, the other's falls through its
stop, and the second position's entry price is lost. The restarted service starts anyway,
flags both, closes the one whose stop was crossed on the first bar it gets, and serves it all."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import httpx
from nats.aio.client import Client

from tradebus.events import Envelope, SignalState

sys.path.insert(0, str(Path(__file__).parent))
from risk_scenario import bar, plan, signal
from test_service import _publish, _service, _until_count, collecting, serving


async def test_restored_positions_are_checked_against_the_latest_price(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    runner, faller = symbol, f"{symbol[:-4]}XUSDT"
    opening: list[Envelope] = []
    for m in range(7):
        for s in (runner, faller):
            if m == 0:
                opening.append(signal(s, 0, SignalState.BUY, plan("100", "95", "200", "20")))
            opening.append(bar(s, m, "100", "101", "99", "100"))
    async with collecting(js_client, runner) as seen_runner, collecting(js_client, faller) as seen_faller:
        first = _service(nats_url, database_url)
        async with serving(first, js_client):
            await _publish(first, opening)
            await _until_count(seen_runner, 3)
            await _until_count(seen_faller, 3)
            await first.pool.execute("UPDATE positions SET entry_price = 0 WHERE symbol = $1", faller)
        # while risk is down: the runner closes 60 % up (its target 200 untouched), the faller opens below its stop
        await _publish(first, [bar(runner, 7, "100", "161", "99", "160"), bar(faller, 7, "90", "91", "80", "85")])
        second = _service(nats_url, database_url)
        async with serving(second, js_client):
            await _until_count(seen_faller, 7)  # exit order, fill, position closed, trade
            transport = httpx.ASGITransport(app=second.app())
            async with httpx.AsyncClient(transport=transport, base_url="http://risk") as client:
                report = {c["symbol"]: c for c in (await client.get("/v1/risk/restart-check")).json()}
                positions = (await client.get("/v1/positions")).json()
                ready = (await client.get("/health/ready")).json()
    assert ready["status"] != "down"  # nothing blocked the start
    assert report[runner]["flags"] == ["moved_over_50pct"] and report[runner]["latest_price"] == "160"
    assert "+59.92% from entry 100.05" in report[runner]["detail"] and report[runner]["closed_by"] is None
    assert report[faller]["flags"] == ["no_entry_price", "stop_crossed"]
    assert report[faller]["detail"].endswith("entry price 100.05 restored from its entry fill")
    trade = report[faller]["closed_by"]
    assert trade["exit_reason"] == "stop" and Decimal(trade["exit_price"]) == Decimal("89.955")  # bar 7's open - 5 bps
    assert Decimal(trade["entry_price"]) == Decimal("100.05")
    assert [(p["symbol"], p["restart_flags"]) for p in positions] == [(runner, ["moved_over_50pct"])]
    assert "+59.92%" in positions[0]["restart_detail"]
