"""The signal service: bars of every configured horizon in, one signal per base bar out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson
from fastapi import Depends, HTTPException
from fastapi.responses import Response
from pydantic import ValidationError

from tradebus import subjects
from tradebus.events import BarEvent, Signal, SignalEvent
from tradebus.logging import get_logger
from tradebus.service import Service
from tradebus.symbols import UNKNOWN_SYMBOL, known, required_symbol
from tradebus.timeframes import Interval, interval_ms
from tradebus_signal.api import SignalAnswer, SignalRequest, bars_behind
from tradebus_signal.engine import SERVICE, EngineOutput, SignalEngine, signal_from_bars
from tradebus_signal.metrics import COMPUTE_SECONDS, SIGNALS
from tradebus_signal.repository import Repository
from tradebus_signal.settings import SignalSettings

log = get_logger(__name__)


def _interval_of(subject: str) -> str:
    """`bars.<interval>.<SYMBOL>` -> interval."""
    parts = subject.split(".")
    return parts[1] if len(parts) == 3 else ""


SEND_SIZES: Final = (8, 16, 32, 64, 128, 256)
"""Signals published together while the rest of a chunk is computed, each slice twice the one
before: a signal waits for the compute of at most about three times as many signals as came
before it, and a chunk of n signals costs about log2(n) writes. Every slice costs CPU (its write, acks handled between
computes) and delays the chunk's last signal: smaller fixed slices gave a better median but a
worse tail and ~10% more CPU per burst."""


async def _let_out() -> None:
    """Two turns of the event loop: one for a publishing task to hand its messages to nats-py,
    the next for nats-py's flusher task to write them to the socket."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def build_service(settings: SignalSettings) -> Service:
    service = Service(SERVICE, settings, migrations="tradebus_signal.migrations")
    params = settings.model_params()
    horizons = settings.signal_horizons
    window = settings.signal_window_bars
    engine = SignalEngine(horizons, params, window, observe=COMPUTE_SECONDS.observe)
    stale_symbols: set[str] = set()
    """Symbols whose in-memory state may be ahead of the database after a failed batch."""

    def repo() -> Repository:
        return Repository(service.pool)

    async def reload(symbols: set[str] | None) -> None:
        bars = await repo().load_windows(horizons, window, sorted(symbols) if symbols else None)
        engine.replace(symbols or {b.symbol for b in bars}, bars)

    @service.on_startup
    async def load_state() -> None:
        await reload(None)
        log.info("indicator state rebuilt", horizons=list(horizons), params_hash=params.model_hash)

    service.publishes("signals.*", SignalEvent, "One signal per closed base-horizon bar, NEUTRAL included")

    # Only the horizons' bars: NATS 2.10+ filters them server-side (the 1m bars, 4 in 5 of all,
    # are never sent); on older servers `accept` drops the rest on arrival.
    @service.consumer(
        name="bars",
        stream="BARS",
        subject="bars.>",
        filter_subjects=[subjects.bars(h, "*") for h in horizons],
        model=BarEvent,
        batch_size=500,
        accept=lambda subject: engine.accepts(_interval_of(subject)),
    )
    async def on_bars(events: list[BarEvent]) -> None:
        """Publish first, then store: a crash in between republishes the same ids on redelivery
        (JetStream and consumers drop them), while the reverse order could lose signals."""
        if stale_symbols:
            await reload(set(stale_symbols))
            stale_symbols.clear()
        try:
            out = await publish_as_computed(events)
            await repo().store(out.bars, out.signals, window)
        except Exception:
            stale_symbols.update(e.data.symbol for e in events)
            raise
        for event in out.signals:
            SIGNALS.labels(event.data.symbol, event.data.state.value).inc()

    async def publish_as_computed(events: list[BarEvent]) -> EngineOutput:
        """The chunk's signals, each slice published while the next is computed; returns when
        every ack is in and raises the first failure. A 5m close brings every symbol's bar at
        once: computed whole before publishing, the first signal waited for the last."""
        out = EngineOutput()
        sending: list[asyncio.Task[None]] = []
        try:
            for part in engine.slices(events, SEND_SIZES):
                out.extend(part)
                if part.signals:
                    signals = [(subjects.signals(e.data.symbol), e) for e in part.signals]
                    sending.append(asyncio.create_task(service.publisher.publish_many(signals)))
                    await _let_out()
        finally:  # every publish started is waited for, even when computing failed
            results = await asyncio.gather(*sending, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return out

    @service.router.post(
        "/v1/signal",
        response_model=SignalAnswer | None,
        tags=["signal"],
        responses={
            409: {"description": "The stored bars of the symbol cannot make a signal (invalid rows)."},
            **UNKNOWN_SYMBOL,
        },
    )
    async def compute_signal(request: SignalRequest) -> SignalAnswer | None:
        """The signal for the latest stored bar of the base horizon (the first of `horizons`); `null`
        while no bar of it is stored. `stale` and `bars_behind` say whether that bar lags the clock."""
        known(request.symbol, settings.symbols)
        try:
            signal = await signal_for(request)
        except (ValidationError, ArithmeticError) as exc:
            log.error("stored bars cannot make a signal", symbol=request.symbol, error=repr(exc))
            raise HTTPException(409, f"the stored bars of {request.symbol} cannot make a signal: {exc}") from exc
        if signal is None:
            return None
        behind = bars_behind(signal.bar_time, signal.interval, datetime.now(tz=UTC))
        return SignalAnswer.model_validate({**dict(signal), "stale": behind > 0, "bars_behind": behind})

    async def signal_for(request: SignalRequest) -> Signal | None:
        chosen: tuple[Interval, ...] = tuple(request.horizons) if request.horizons else horizons
        base_bars = await repo().recent_bars(request.symbol, chosen[0], request.bar_limit)
        if not base_bars:
            return None
        decided_at = base_bars[-1].open_time + timedelta(milliseconds=interval_ms(chosen[0]))
        others = {
            h: await repo().recent_bars(
                request.symbol, h, request.bar_limit, decided_at - timedelta(milliseconds=interval_ms(h))
            )
            for h in chosen[1:]
        }
        return await asyncio.to_thread(signal_from_bars, base_bars, others, chosen, params, explain=request.explain)

    @service.router.get("/v1/signals/latest", tags=["signal"], responses=UNKNOWN_SYMBOL)
    async def latest_signal(symbol: str = Depends(required_symbol(settings.symbols))) -> Response:
        """The newest signal emitted for `symbol`, as published; `null` while none was."""
        stored = await repo().latest_signal(symbol)
        if stored is None:
            return Response(b"null", media_type="application/json")
        return Response(orjson.dumps(orjson.loads(stored)["data"]), media_type="application/json")

    return service
