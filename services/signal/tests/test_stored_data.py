"""`POST /v1/signal` never answers 500 because of what is stored: a bar that cannot be one (left by
an older version, or written by hand) makes a clear 409 naming the symbol."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tradebus.events import BarEvent, Mode
from tradebus.settings import DEFAULT_MAX_MESSAGE_BYTES
from tradebus.testing import running
from tradebus.timeframes import Interval
from tradebus_signal.app import build_service
from tradebus_signal.engine import SignalEngine
from tradebus_signal.params import ModelParams
from tradebus_signal.settings import SignalSettings

sys.path.insert(0, str(Path(__file__).parent))
from signal_testkit import sequence

INSERT = """
INSERT INTO bars (symbol, interval, open_time, close_time, open, high, low, close, volume, quote_volume, trades,
                  complete, source, revision)
VALUES ('BTCUSDT', '5m', $1::timestamptz, $1::timestamptz + interval '5 minutes' - interval '1 millisecond',
        100, $2, 99, 100.5, 1, 100, 1, true, 'aggregated', 0)
"""


@pytest.mark.parametrize(
    ("open_time", "high"),
    [
        pytest.param("9999-12-31T23:55:00Z", 101, id="a bar of year 9999: its close overflows the calendar"),
        pytest.param("2024-03-04T00:00:00Z", 98, id="high below low"),
    ],
)
async def test_bad_stored_bars_answer_409_not_500(nats_url: str, database_url: str, open_time: str, high: int) -> None:
    service = build_service(SignalSettings(nats_url=nats_url, database_url=database_url, signal_horizons="5m"))
    async with running(service):
        await service.pool.execute(INSERT, datetime.fromisoformat(open_time), high)
        transport = httpx.ASGITransport(app=service.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://signal") as client:
            answer = await client.post("/v1/signal", json={"symbol": "BTCUSDT", "horizons": ["5m"], "bar_limit": 10})
    assert answer.status_code == 409, answer.text
    assert "the stored bars of BTCUSDT cannot make a signal" in answer.json()["detail"]


def test_the_message_size_limit_leaves_room_over_the_largest_signal() -> None:
    """`BUS_MAX_MESSAGE_BYTES`'s default is sized from the largest real event, a signal of every
    horizon with its explanation: four times it must still fit."""
    horizons: tuple[Interval, ...] = ("5m", "15m", "1h", "4h", "1d")
    bars = sequence("ETHUSDT", horizons)
    events = [BarEvent.of(b, source="aggregator", mode=Mode.REPLAY, trace_id=f"t{b.open_ms}") for b in bars]
    signals = SignalEngine(horizons, ModelParams(), 1000).apply(events).signals
    largest = max(len(s.model_dump_json().encode()) for s in signals)
    assert largest > 4_000 and 4 * largest < DEFAULT_MAX_MESSAGE_BYTES, largest
