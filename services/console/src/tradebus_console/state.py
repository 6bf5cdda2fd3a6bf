"""The console's live state: what a browser sees at once, and the delta each bus event makes to it.

Pure (no I/O): `LiveState.apply` takes one decoded event and returns the delta to push, so the
rules are tested without a bus. Amounts stay the decimal strings the services emit (the contract's
JSON serialisation), never floats; times stay UTC ISO-8601.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from tradebus.events import (
    BarEvent,
    DailyPerformanceEvent,
    Envelope,
    OrderEvent,
    PositionEvent,
    ReadinessEvent,
    RejectionEvent,
    SignalEvent,
    TradeEvent,
)

Json = dict[str, Any]
Delta = Json

MAX_DECISIONS: Final = 50
MAX_MARKERS: Final = 300
"""Signals kept per symbol as chart markers (~a day of 5m signals)."""
MAX_EQUITY_POINTS: Final = 2000
MARKED_STATES: Final = frozenset({"STRONG_BUY", "BUY", "SELL", "STRONG_SELL"})

MODELS: Final[Mapping[str, type[Envelope]]] = {
    "bars": BarEvent,
    "signals": SignalEvent,
    "exec.order": OrderEvent,
    "exec.position": PositionEvent,
    "exec.rejected": RejectionEvent,
    "exec.trade": TradeEvent,
    "telemetry.readiness": ReadinessEvent,
    "rollups.daily": DailyPerformanceEvent,
}
"""The event model of each subject family the console shows (by subject prefix)."""


def model_for(subject: str) -> type[Envelope] | None:
    """The model of `subject`'s events, or None for subjects the console does not show."""
    head, _, rest = subject.partition(".")
    if head in ("bars", "signals"):
        return MODELS[head]
    second = rest.partition(".")[0]
    return MODELS.get(f"{head}.{second}") or MODELS.get(subject)


@dataclass
class LiveState:
    """Latest state per symbol and account-wide; `to_json`/`from_json` round-trip it (the Redis snapshot)."""

    readiness: Json | None = None
    signals: dict[str, Json] = field(default_factory=dict)
    markers: dict[str, deque[Json]] = field(default_factory=dict)
    positions: dict[str, Json] = field(default_factory=dict)
    account: Json | None = None
    equity: deque[Json] = field(default_factory=lambda: deque(maxlen=MAX_EQUITY_POINTS))
    decisions: deque[Json] = field(default_factory=lambda: deque(maxlen=MAX_DECISIONS))
    daily: dict[str, Json] = field(default_factory=dict)
    bars: dict[str, Json] = field(default_factory=dict)
    """The last bar per `SYMBOL|interval`."""
    seen: int = 0
    """Events applied since the state was built (a restart serves the snapshot, then counts on)."""

    # ----------------------------------------------------------------- events
    def apply(self, event: Envelope) -> Delta | None:
        """Fold `event` in; the delta a browser applies, or None when nothing it shows changed."""
        self.seen += 1
        if isinstance(event, BarEvent):
            bar = event.data.model_dump(mode="json")
            self.bars[f"{bar['symbol']}|{bar['interval']}"] = bar
            return {"kind": "bar", "data": bar}
        if isinstance(event, SignalEvent):
            return self._signal(event)
        if isinstance(event, PositionEvent):
            position = event.data.model_dump(mode="json")
            if position["status"] == "closed":
                self.positions.pop(position["symbol"], None)
            else:
                self.positions[position["symbol"]] = position
            return {"kind": "position", "data": position}
        if isinstance(event, OrderEvent):
            order = event.data
            outcome = "accepted" if order.purpose == "entry" else "exit"
            detail = f"{order.side.value} {order.quantity}"
            return self._decision(
                event.event_id, order.submitted_at.isoformat(), order.symbol, outcome, order.reason, detail
            )
        if isinstance(event, RejectionEvent):
            r = event.data
            return self._decision(
                event.event_id, event.emitted_at.isoformat(), r.symbol, "rejected", r.reason, r.detail
            )
        if isinstance(event, TradeEvent):
            return self._trade(event)
        if isinstance(event, ReadinessEvent):
            self.readiness = event.data.model_dump(mode="json")
            return {"kind": "readiness", "data": self.readiness}
        if isinstance(event, DailyPerformanceEvent):
            row = event.data.model_dump(mode="json")
            self.daily[row["day"]] = row
            return {"kind": "daily", "data": row}
        return None

    def _signal(self, event: SignalEvent) -> Delta:
        signal = {"event_id": event.event_id, **event.data.model_dump(mode="json", exclude={"features"})}
        for horizon in signal["horizons"]:
            horizon.pop("features", None)
        symbol = signal["symbol"]
        self.signals[symbol] = signal
        marker = None
        if signal["state"] in MARKED_STATES:
            marker = {"time": signal["bar_time"], "state": signal["state"], "direction": signal["direction"]}
            self.markers.setdefault(symbol, deque(maxlen=MAX_MARKERS)).append(marker)
        return {"kind": "signal", "data": signal, "marker": marker}

    def _decision(self, event_id: str, at: str, symbol: str, outcome: str, reason: str, detail: str) -> Delta:
        decision = {
            "event_id": event_id,
            "time": at.replace("+00:00", "Z"),
            "symbol": symbol,
            "outcome": outcome,
            "reason": reason,
            "detail": detail,
        }
        self.decisions.append(decision)
        return {"kind": "decision", "data": decision}

    def _trade(self, event: TradeEvent) -> Delta | None:
        base = self.equity[-1]["equity"] if self.equity else (self.account or {}).get("initial_balance")
        if base is None:
            return None
        point = {"time": event.data.model_dump(mode="json")["exit_time"], "equity": _add(base, event.data.net_pnl)}
        self.equity.append(point)
        return {"kind": "equity", "data": point}

    # ----------------------------------------------------------------- rebuilt from the APIs
    def set_account(self, account: Json) -> Delta:
        self.account = account
        return {"kind": "account", "data": account}

    def set_positions(self, positions: list[Json]) -> None:
        self.positions = {p["symbol"]: p for p in positions if p.get("status", "open") == "open"}

    def set_trades(self, trades: list[Json], initial_balance: str) -> None:
        """The realized equity curve: the initial balance plus each closed trade's net P&L in exit order."""
        self.equity.clear()
        equity = initial_balance
        for trade in sorted(trades, key=lambda t: (t["exit_time"], t["trade_id"])):
            equity = _add(equity, trade["net_pnl"])
            self.equity.append({"time": trade["exit_time"], "equity": equity})

    def set_daily(self, rows: list[Json]) -> None:
        self.daily = {row["day"]: row for row in rows}

    def set_readiness(self, readiness: Json) -> None:
        self.readiness = readiness

    # ----------------------------------------------------------------- snapshot
    def to_json(self) -> Json:
        """Everything a browser needs to draw the page (and what the Redis snapshot holds)."""
        return {
            "readiness": self.readiness,
            "signals": self.signals,
            "markers": {symbol: list(m) for symbol, m in self.markers.items()},
            "positions": self.positions,
            "account": self.account,
            "equity": list(self.equity),
            "decisions": list(self.decisions),
            "daily": [self.daily[day] for day in sorted(self.daily)],
            "bars": self.bars,
        }

    @classmethod
    def from_json(cls, data: Json) -> LiveState:
        state = cls(
            readiness=data.get("readiness"),
            signals=dict(data.get("signals") or {}),
            positions=dict(data.get("positions") or {}),
            account=data.get("account"),
            daily={row["day"]: row for row in data.get("daily") or ()},
            bars=dict(data.get("bars") or {}),
        )
        state.markers = {s: deque(m, maxlen=MAX_MARKERS) for s, m in (data.get("markers") or {}).items()}
        state.equity.extend(data.get("equity") or ())
        state.decisions.extend(data.get("decisions") or ())
        return state


def _add(a: object, b: object) -> str:
    try:
        return str(Decimal(str(a)) + Decimal(str(b)))
    except InvalidOperation:
        return str(a)
