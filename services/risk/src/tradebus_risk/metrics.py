"""The risk service's own Prometheus metrics (names fixed by ARCHITECTURE.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
