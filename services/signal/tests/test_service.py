"""The signal service on a real NATS and PostgreSQL: dense signals, restart, HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import nats
import pytest
from rich.console import Console
from signal_testkit import sequence

from tradebus import subjects
from tradebus.events import Bar, BarEvent, Mode, Signal, SignalEvent, SignalState
from tradebus.service import Service
from tradebus.testing import admin_publisher, running, wait_for
from tradebus_cli.signal import render
from tradebus_signal.api import CLOSE_GRACE, bars_behind
from tradebus_signal.app import build_service
from tradebus_signal.engine import SignalEngine
from tradebus_signal.settings import SignalSettings

HORIZONS = ("5m", "15m", "1h")


@pytest.fixture
def make_service(nats_url: str, database_url: str) -> Callable[[], Service]:
    def make() -> Service:
        settings = SignalSettings(
            nats_url=nats_url,
            database_url=database_url,
            heartbeat_interval_s=0.5,
            signal_horizons=",".join(HORIZONS),
            symbols=("SIGDENSEUSDT", "SIGRESTARTUSDT"),
        )
        return build_service(settings)

    return make


def _events(bars: list[Bar], mode: Mode = Mode.REPLAY) -> list[BarEvent]:
    return [BarEvent.of(b, source="aggregator", mode=mode, trace_id=f"trace-{b.interval}-{b.open_ms}") for b in bars]


async def _publish(service: Service, events: list[BarEvent]) -> None:
    await (await admin_publisher(service)).publish_many(
        (subjects.bars(e.data.interval, e.data.symbol), e) for e in events
    )


async def _stored_signals(service: Service, symbol: str) -> list[SignalEvent]:
    rows = await service.pool.fetch("SELECT event::text FROM signals WHERE symbol = $1 ORDER BY bar_time", symbol)
    return [SignalEvent.model_validate_json(r["event"]) for r in rows]


async def _until_signals(service: Service, symbol: str, count: int) -> list[SignalEvent]:
    async def enough() -> bool:
        return len(await _stored_signals(service, symbol)) >= count

    await wait_for(enough, timeout=20, what=f"{count} signals for {symbol}")
    return await _stored_signals(service, symbol)


def _expected(bars: list[Bar]) -> list[Signal]:
    settings = SignalSettings(signal_horizons=",".join(HORIZONS))
    engine = SignalEngine(HORIZONS, settings.model_params(), settings.signal_window_bars)
    return [e.data for e in engine.apply(_events(bars)).signals]


async def test_one_signal_per_base_bar_with_ids_mode_and_trace(make_service, nats_url: str) -> None:
    symbol = "SIGDENSEUSDT"
    bars = sequence(symbol)
    base = [b for b in bars if b.interval == "5m"]
    async with running(make_service()) as service:
        nc = await nats.connect(nats_url)
        try:
            sub = await nc.jetstream().subscribe(subjects.signals(symbol), ordered_consumer=True)
            await _publish(service, _events(bars))
            stored = await _until_signals(service, symbol, len(base))
            published = [SignalEvent.model_validate_json((await sub.next_msg(timeout=10)).data) for _ in base]
        finally:
            await nc.close()
    ids = [f"signal:{symbol}:5m:{b.open_ms}" for b in base]
    assert [e.event_id for e in published] == [e.event_id for e in stored] == ids
    assert all(e.mode is Mode.REPLAY for e in published)
    assert [e.trace_id for e in published] == [f"trace-5m-{b.open_ms}" for b in base]
    assert [e.data for e in published] == _expected(bars)
    assert SignalState.NEUTRAL in {e.data.state for e in published}


async def test_the_durable_asks_the_server_for_the_horizons_only(make_service, nats_url: str) -> None:
    async with running(make_service()):
        nc = await nats.connect(nats_url)
        try:
            info = await nc.jetstream().consumer_info("BARS", "signal-bars")
        finally:
            await nc.close()
    assert info.config.filter_subjects == [subjects.bars(h, "*") for h in HORIZONS]


@asynccontextmanager
async def _client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://signal") as client:
        yield client


async def _no_pull_waiting(nats_url: str) -> None:
    """Wait until the stopped instance's last pull request expired on the server: a message
    published before that would be handed to the dead instance and come back only after the
    consumer's ack wait (a restart race of the shared shell, not of this service)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()

        async def expired() -> bool:
            return (await js.consumer_info("BARS", "signal-bars")).num_waiting == 0

        await wait_for(expired, timeout=5, what="the stopped consumer's pull request to expire")
    finally:
        await nc.close()


async def test_restart_rebuilds_state_and_http_api(make_service, nats_url: str) -> None:
    symbol = "SIGRESTARTUSDT"
    bars = sequence(symbol)
    half = len(bars) // 2
    first_base = sum(1 for b in bars[:half] if b.interval == "5m")
    total_base = sum(1 for b in bars if b.interval == "5m")
    async with running(make_service()) as service:
        await _publish(service, _events(bars[:half]))
        await _until_signals(service, symbol, first_base)
    await _no_pull_waiting(nats_url)
    async with running(make_service()) as service:
        await _publish(service, _events(bars[half:]))
        stored = await _until_signals(service, symbol, total_base)
        assert [e.data for e in stored] == _expected(bars)

        async with _client(service) as client:
            body = {"symbol": symbol.lower(), "horizons": list(HORIZONS), "bar_limit": 1000, "explain": True}
            answer = await client.post("/v1/signal", json=body)
            terse = await client.post("/v1/signal", json={"symbol": symbol, "horizons": ["5m"], "explain": False})
            latest = await client.get("/v1/signals/latest", params={"symbol": symbol})
            missing = await client.post("/v1/signal", json={"symbol": "NOSUCHUSDT"})
            missing_latest = await client.get("/v1/signals/latest", params={"symbol": "nosuchusdt"})
            empty = await client.post("/v1/signal", json={"symbol": "SIGDENSEUSDT"})  # configured, no bars here
            empty_latest = await client.get("/v1/signals/latest", params={"symbol": "SIGDENSEUSDT"})
            metrics = await client.get("/metrics")
            bad = [
                await client.post("/v1/signal", json=b)
                for b in (
                    {"symbol": symbol, "horizons": ["2h"]},
                    {"symbol": symbol, "horizons": ["1m"]},
                    {"symbol": symbol, "horizons": []},
                    {"symbol": symbol, "bar_limit": 0},
                    {"symbol": symbol, "bar_limit": 1001},
                    {"symbol": "BTC-USD"},
                    {"symbol": symbol, "surprise": 1},
                )
            ]
    assert answer.status_code == 200, answer.text
    signal = Signal.model_validate(answer.json())
    assert signal == stored[-1].data
    assert answer.json()["consensus"]["agreement_score"] == str(signal.consensus.agreement_score)
    assert terse.status_code == 200 and terse.json()["explanation"] == ""
    assert [h["interval"] for h in terse.json()["horizons"]] == ["5m"]
    assert latest.status_code == 200 and Signal.model_validate(latest.json()) == stored[-1].data
    known = "this stack knows SIGDENSEUSDT, SIGRESTARTUSDT (SYMBOLS)"
    assert missing.status_code == 404 and f"unknown symbol NOSUCHUSDT; {known}" in missing.text
    assert missing_latest.status_code == 404 and f"unknown symbol NOSUCHUSDT; {known}" in missing_latest.text
    assert (empty.status_code, empty.json()) == (200, None) and (empty_latest.status_code, empty_latest.json()) == (
        200,
        None,
    )
    # the history is of 2024: the answer says how far behind the clock its bar is
    due = datetime.now(tz=UTC) - CLOSE_GRACE - (signal.bar_time + timedelta(minutes=5))
    assert answer.json()["stale"] is True
    assert abs(answer.json()["bars_behind"] - due // timedelta(minutes=5)) <= 1
    console = Console(record=True, width=200, color_system=None)
    render(console, answer.json())  # what `tradebus signal` prints of this answer
    printed = console.export_text()
    assert f"catching up: latest bar is {answer.json()['bars_behind']} 5m bars behind the clock" in printed
    if signal.plan is not None:
        assert f"R/R {signal.plan.risk_reward.quantize(Decimal('0.01'))}" in printed
    assert [r.status_code for r in bad] == [422] * len(bad)
    assert f'tradebus_signal_signals_total{{state="NEUTRAL",symbol="{symbol}"}}'.encode() in metrics.content
    assert b"tradebus_signal_compute_seconds_bucket" in metrics.content


def test_bars_behind_counts_base_bars_closed_after_the_signalled_one() -> None:
    bar = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # the 12:00 5m bar closes at 12:05
    assert bars_behind(bar, "5m", datetime(2026, 1, 1, 12, 5, 30, tzinfo=UTC)) == 0  # next one not closed yet
    assert bars_behind(bar, "5m", datetime(2026, 1, 1, 12, 10, 30, tzinfo=UTC)) == 0  # inside the grace
    assert bars_behind(bar, "5m", datetime(2026, 1, 1, 12, 11, 1, tzinfo=UTC)) == 1
    assert bars_behind(bar, "1h", datetime(2026, 1, 2, 13, 1, 1, tzinfo=UTC)) == 24
