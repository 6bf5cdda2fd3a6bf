"""Builders for risk tests: 1m bars, dense 5m signals and a scripted replay with known results."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tradebus.events import (
    BarEvent,
    BarSource,
    Consensus,
    Direction,
    HorizonSignal,
    Mode,
    ModelInfo,
    Side,
    Signal,
    SignalEvent,
    SignalState,
    TradePlan,
    make_bar,
    signal_event_id,
    trace_id_for,
)
from tradebus.timeframes import MINUTE_MS, datetime_to_ms, ms_to_datetime
from tradebus_risk.precision import MoneyPolicy

T0_MS = datetime_to_ms(datetime(2024, 1, 2, tzinfo=UTC))
D = Decimal


def bar(
    symbol: str, minute: int, o: str, h: str, low: str, c: str, *, mode: Mode = Mode.REPLAY, t0_ms: int = T0_MS
) -> BarEvent:
    b = make_bar(symbol, "1m", t0_ms + minute * MINUTE_MS, D(o), D(h), D(low), D(c), D(1), D(c), 1, BarSource.SYNTHETIC)
    return BarEvent.of(b, source="ingest", mode=mode)


def plan(entry: str, stop: str, target: str, rr: str) -> TradePlan:
    return TradePlan(entry=D(entry), stop=D(stop), targets=[D(target)], risk_reward=D(rr))


def signal(
    symbol: str,
    minute: int,
    state: SignalState,
    trade_plan: TradePlan | None = None,
    *,
    price: str = "100",
    mode: Mode = Mode.REPLAY,
    t0_ms: int = T0_MS,
) -> SignalEvent:
    """The 5m signal of the bar opening at `minute` (decided at minute + 5)."""
    bar_ms = t0_ms + minute * MINUTE_MS
    direction = {"BUY": Direction.LONG, "SELL": Direction.SHORT}.get(state.removeprefix("STRONG_"), Direction.FLAT)
    data = Signal(
        symbol=symbol,
        interval="5m",
        bar_time=ms_to_datetime(bar_ms),
        price=D(price),
        state=state,
        direction=direction,
        confidence=D("0.7"),
        horizons=[],
        consensus=Consensus(consensus_direction=direction, consensus_confidence=D("0.7"), agreement_score=D(1)),
        plan=trade_plan,
        model=ModelInfo(version="test-model-1", hash="abc"),
    )
    event_id = signal_event_id(symbol, "5m", bar_ms)
    return SignalEvent.build(
        event_id=event_id, source="signal", trace_id=trace_id_for(f"bar:{symbol}:5m:{bar_ms}"), data=data, mode=mode
    )


def with_detail(event: SignalEvent) -> SignalEvent:
    """`event` with what the signal service adds and risk ignores: horizons, features, rationale."""
    data = event.data
    features = {name: D("0.123456789") for name in ("atr", "rsi", "macd", "score")}
    horizon = HorizonSignal(
        interval="15m", direction=data.direction, strength=D("0.5"), confidence=D("0.4"), bars=60, features=features
    )
    detail = {"horizons": [horizon], "features": features, "rationale": ["15m:trend_up"], "explanation": "why"}
    return event.model_copy(update={"data": data.model_copy(update=detail)})


# The scripted replay: 40 one-minute bars and 7 dense 5m signals.
#   BUY @C=5 fills at bar 5's open 100 (+5 bps = 100.05), 19.99 units (capped at 20 % of 10,000
#   at the fill price: 2,000 / 100.05, rounded down)
#   SELL @C=15 exits at bar 15's open 103 (-5 bps = 102.9485): the first trade, reason "signal"
#   STRONG_BUY @C=20 fills at 103.0515, 19.51234 units (the cap at the fill); bar 22 touches the stop 101 AND the
#   target 107: stop first, exit at 101 - 5 bps = 100.9495: the second trade, reason "stop"
#   SELL @C=25 no_position, BUY @C=30 risk_reward_too_low, BUY @C=35 no_plan (all published)
_PRICES: dict[int, tuple[str, str, str, str]] = {
    15: ("103", "103.5", "102.5", "103"),
    20: ("103", "103.5", "102.8", "103.2"),
    21: ("103.2", "104", "102", "102.5"),
    22: ("102.5", "107.5", "100.5", "101.5"),
}


def scenario_bars(symbol: str) -> list[BarEvent]:
    out = []
    for minute in range(40):
        default = ("100", "101", "99.5", "100.5") if minute < 15 else ("101", "101.5", "100.8", "101.2")
        o, h, low, c = _PRICES.get(minute, default)
        out.append(bar(symbol, minute, o, h, low, c))
    return out


def scenario_signals(symbol: str) -> list[SignalEvent]:
    return [
        signal(symbol, 0, SignalState.BUY, plan("100", "98", "106", "3")),
        signal(symbol, 5, SignalState.NEUTRAL),
        signal(symbol, 10, SignalState.SELL),
        signal(symbol, 15, SignalState.STRONG_BUY, plan("103", "101", "107", "2")),
        signal(symbol, 20, SignalState.SELL),
        signal(symbol, 25, SignalState.BUY, plan("101", "100", "102", "1.0")),
        signal(symbol, 30, SignalState.BUY),
    ]


FIRST_ENTRY = D("100.05")
FIRST_EXIT = D("102.9485")
FIRST_QTY = D("19.99")
SECOND_ENTRY = D("103.0515")
SECOND_EXIT = D("100.9495")
SECOND_QTY = D("19.51234")


def net(qty: Decimal, entry: Decimal, exit_: Decimal, fee_rate: Decimal = D("0.001")) -> Decimal:
    """A round trip's net P&L by the money policy: notionals against the trader, fees rounded up."""
    money = MoneyPolicy()
    paid, got = money.notional(qty, entry, Side.BUY), money.notional(qty, exit_, Side.SELL)
    return got - paid - money.fee(paid, fee_rate) - money.fee(got, fee_rate)
