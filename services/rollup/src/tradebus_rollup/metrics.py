"""The rollup's gauges for Grafana: overall performance of every stored trade."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

WIN_RATE = Gauge("tradebus_rollup_win_rate", "Winning share of all closed trades (0..1).")
DAILY_PNL = Gauge("tradebus_rollup_daily_pnl", "Net P&L of the latest day with a daily_performance row.")
PNL_GIVEBACK_RATIO = Gauge(
    "tradebus_rollup_pnl_giveback_ratio",
    "Share of the peak cumulative net P&L of closed trades given back since (0..1; 0 when the peak is <= 0). "
    "Not the equity drawdown: that is tradebus_risk_drawdown_ratio.",
)
TRADES_TOTAL = Gauge("tradebus_rollup_trades_total", "Closed trades stored.")
NET_PNL_TOTAL = Gauge("tradebus_rollup_net_pnl_total", "Net P&L of all closed trades.")
EOD_RUNS = Counter("tradebus_rollup_eod_runs_total", "End-of-day job attempts by outcome.", ["outcome"])
