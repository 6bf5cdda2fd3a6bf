"""The risk service's own Prometheus metrics (names fixed by ARCHITECTURE.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge

from tradebus.events import Breaker
from tradebus_risk.breaker import BreakerState

DECISIONS = Counter(
    "tradebus_risk_decisions_total", "Verdicts on signals, by decision and reason.", ["decision", "reason"]
)
FILLS = Counter("tradebus_risk_fills_total", "Paper fills, by side.", ["side"])
EQUITY = Gauge("tradebus_risk_equity", "The home asset's cash plus its open positions marked at the last 1m close.")
OPEN_POSITIONS = Gauge("tradebus_risk_open_positions", "Open long positions.")
DRAWDOWN = Gauge(
    "tradebus_risk_drawdown_ratio", "The largest fall of an asset's equity from its peak, as a fraction of the peak."
)
FROZEN = Gauge("tradebus_risk_trading_frozen", "1 while a drawdown freeze blocks new entries (of any asset).")
BALANCE_EQUITY = Gauge(
    "tradebus_risk_balance_equity", "Equity of each quote asset's account, in that asset.", ["asset"]
)
BALANCE_DRAWDOWN = Gauge(
    "tradebus_risk_balance_drawdown_ratio", "Fall of each quote asset's equity from its peak.", ["asset"]
)
LATE_EVENTS = Counter(
    "tradebus_risk_late_events_total",
    "Bars and signals applied behind the account's event time (their stream was excused from the order).",
    ["kind"],
)
WATERMARK_EXCUSED = Counter(
    "tradebus_risk_watermark_excused_total",
    "Streams left out of the event-time order after RISK_WATERMARK_HOLD_S of silence.",
    ["kind"],
)
BREAKER_OPEN = Gauge(
    "tradebus_risk_breaker_open",
    "Circuit breakers by scope (a symbol, or ACCOUNT): 1 open, 0.5 half-open, 0 closed.",
    ["scope"],
)
BREAKER_TRIPS = Counter("tradebus_risk_breaker_trips_total", "Circuit breaker trips, by trigger.", ["trigger"])
READINESS_GATE = Gauge(
    "tradebus_risk_readiness_gate_closed", "1 while telemetry's readiness keeps risk from opening live positions."
)
_BREAKER_LEVEL = {"closed": 0.0, "half_open": 0.5, "open": 1.0}


def count_breakers(changes: Iterable[Breaker]) -> None:
    """Gauges and trip counts for a batch's breaker transitions."""
    for change in changes:
        BREAKER_OPEN.labels(change.scope).set(_BREAKER_LEVEL[change.state])
        if change.state == "open":
            BREAKER_TRIPS.labels(change.trigger).inc()


def set_breakers(states: Mapping[str, BreakerState]) -> None:
    """The gauges from the saved breakers (at start)."""
    for scope, state in states.items():
        BREAKER_OPEN.labels(scope).set(_BREAKER_LEVEL[state.state])
