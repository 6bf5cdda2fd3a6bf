"""Events the console tests publish (as the bus's admin, on subjects the console only reads)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradebus.events import (
    Consensus,
    Direction,
    HorizonSignal,
    ModelInfo,
    Signal,
    SignalEvent,
    SignalState,
    TradePlan,
    signal_event_id,
)

T0 = datetime(2024, 3, 4, tzinfo=UTC)
HORIZONS = (
    ("5m", Direction.LONG, "0.4", "0.6", 300),
    ("1h", Direction.LONG, "0.55", "0.7", 48),
    ("4h", Direction.FLAT, "0.1", "0.3", 12),
)


def signal_event(symbol: str, n: int, *, explanation: str = "trend up on 1h and 4h") -> SignalEvent:
    bar_time = T0 + timedelta(minutes=5 * n)
    price = Decimal("30000.50") + n
    return SignalEvent.build(
        event_id=signal_event_id(symbol, "5m", int(bar_time.timestamp() * 1000)),
        source="signal",
        trace_id=f"trace-{symbol}-{n}",
        data=Signal(
            symbol=symbol,
            interval="5m",
            bar_time=bar_time,
            price=price,
            state=SignalState.BUY,
            direction=Direction.LONG,
            confidence=Decimal("0.71"),
            horizons=[
                HorizonSignal(interval=i, direction=d, strength=Decimal(st), confidence=Decimal(c), bars=n)
                for i, d, st, c, n in HORIZONS
            ],
            consensus=Consensus(
                consensus_direction=Direction.LONG,
                consensus_confidence=Decimal("0.66"),
                agreement_score=Decimal("0.6667"),
            ),
            plan=TradePlan(
                entry=price, stop=price - 300, targets=[price + 450, price + 900], risk_reward=Decimal("1.5")
            ),
            explanation=explanation,
            model=ModelInfo(version="test", hash="0" * 8),
        ),
        emitted_at=T0,
    )
