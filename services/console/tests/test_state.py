"""The console's state rules without a bus: what each event changes, and the Redis round trip."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
from events import T0, signal_event

from tradebus.events import (
    Direction,
    Order,
    OrderEvent,
    Position,
    PositionEvent,
    Rejection,
    RejectionEvent,
    Side,
    SignalState,
    Trade,
    TradeEvent,
)
from tradebus_console.hub import Hub
from tradebus_console.state import LiveState, model_for


def _position(status: str, entry: str = "30000.5") -> PositionEvent:
    return PositionEvent.build(
        event_id=f"position:BTCUSDT:{status}",
        source="risk",
        trace_id="t",
        data=Position(
            symbol="BTCUSDT",
            direction=Direction.LONG if status == "open" else Direction.FLAT,
            quantity=Decimal("0.01635") if status == "open" else Decimal(0),
            entry_price=Decimal(entry),
            stop=Decimal("29000"),
            targets=[Decimal("31000.10")],
            status=status,  # type: ignore[arg-type]
            updated_at=T0,
        ),
    )


def test_subjects_map_to_the_models_the_console_shows() -> None:
    assert model_for("bars.4h.BTCUSDT").__name__ == "BarEvent"  # type: ignore[union-attr]
    assert model_for("signals.ETHUSDT").__name__ == "SignalEvent"  # type: ignore[union-attr]
    assert model_for("exec.rejected.ETHUSDT").__name__ == "RejectionEvent"  # type: ignore[union-attr]
    assert model_for("telemetry.readiness").__name__ == "ReadinessEvent"  # type: ignore[union-attr]
    assert model_for("rollups.daily").__name__ == "DailyPerformanceEvent"  # type: ignore[union-attr]
    assert model_for("exec.fill.BTCUSDT") is None
    assert model_for("rollups.strategy") is None


def test_a_signal_is_kept_per_symbol_with_amounts_as_decimal_strings_and_marked_when_it_calls_a_side() -> None:
    state = LiveState()
    delta = state.apply(signal_event("BTCUSDT", 1))
    assert delta is not None and delta["kind"] == "signal"
    shown = state.signals["BTCUSDT"]
    assert shown["consensus"]["agreement_score"] == "0.6667"
    assert shown["plan"]["targets"] == ["30451.50", "30901.50"]
    assert "features" not in shown and all("features" not in h for h in shown["horizons"])
    assert delta["marker"] == {"time": "2024-03-04T00:05:00Z", "state": "BUY", "direction": "long"}
    neutral = signal_event("BTCUSDT", 2).model_copy(deep=True)
    neutral = neutral.model_copy(update={"data": neutral.data.model_copy(update={"state": SignalState.NEUTRAL})})
    assert state.apply(neutral)["marker"] is None  # type: ignore[index]
    assert len(state.markers["BTCUSDT"]) == 1


def test_positions_open_and_close_and_decisions_say_why() -> None:
    state = LiveState()
    state.apply(_position("open"))
    assert state.positions["BTCUSDT"]["entry_price"] == "30000.5"
    state.apply(_position("closed"))
    assert state.positions == {}
    order = Order(
        order_id="o1", symbol="BTCUSDT", side=Side.BUY, quantity=Decimal("0.5"), purpose="entry", reason="BUY",
        submitted_at=datetime(2024, 3, 4, 1, tzinfo=UTC),
    )  # fmt: skip
    state.apply(OrderEvent.build(event_id="order:o1", source="risk", trace_id="t", data=order))
    rejection = Rejection(signal_id="s", symbol="ETHUSDT", reason="<b>max_open_positions</b>", detail="2 of 2")
    state.apply(RejectionEvent.build(event_id="rejected:s", source="risk", trace_id="t", data=rejection, emitted_at=T0))
    assert [(d["outcome"], d["reason"], d["detail"]) for d in state.decisions] == [
        ("accepted", "BUY", "BUY 0.5"),
        ("rejected", "<b>max_open_positions</b>", "2 of 2"),  # kept as given: the page renders it as text
    ]
    assert state.decisions[0]["time"] == "2024-03-04T01:00:00Z"


def test_the_equity_curve_adds_each_closed_trade_to_the_initial_balance_exactly() -> None:
    state = LiveState()
    state.set_account({"initial_balance": "10000", "equity": "10000"})
    state.set_trades(
        [
            {"trade_id": "b", "exit_time": "2024-03-04T02:00:00Z", "net_pnl": "-0.30000001"},
            {"trade_id": "a", "exit_time": "2024-03-04T01:00:00Z", "net_pnl": "12.1"},
        ],
        "10000",
    )
    assert [p["equity"] for p in state.equity] == ["10012.1", "10011.79999999"]
    trade = Trade(
        trade_id="c", symbol="BTCUSDT", strategy="s", direction=Direction.LONG, quantity=Decimal(1),
        entry_price=Decimal(1), exit_price=Decimal(2), entry_time=T0, exit_time=datetime(2024, 3, 4, 3, tzinfo=UTC),
        gross_pnl=Decimal(1), fees=Decimal(0), net_pnl=Decimal("0.00000001"), exit_reason="target",
    )  # fmt: skip
    delta = state.apply(TradeEvent.build(event_id="trade:c", source="risk", trace_id="t", data=trade))
    assert delta == {"kind": "equity", "data": {"time": "2024-03-04T03:00:00Z", "equity": "10011.80000000"}}


def test_the_snapshot_round_trips_through_json() -> None:
    state = LiveState()
    state.apply(signal_event("BTCUSDT", 1))
    state.apply(_position("open"))
    state.set_daily([{"day": "2024-03-05", "net_pnl": "1"}, {"day": "2024-03-04", "net_pnl": "2"}])
    document = state.to_json()
    again = LiveState.from_json(orjson.loads(orjson.dumps(document)))
    assert again.to_json() == document
    assert [row["day"] for row in document["daily"]] == ["2024-03-04", "2024-03-05"]


async def test_the_hub_sends_the_snapshot_then_each_delta_once_and_drops_a_client_that_falls_behind() -> None:
    hub = Hub()
    stream = hub.stream(lambda: {"n": 0})
    assert await anext(stream) == b'event: snapshot\ndata: {"n":0}\n\n'
    hub.publish({"kind": "bar", "data": 1})
    assert await anext(stream) == b'event: delta\ndata: {"kind":"bar","data":1}\n\n'
    assert hub.clients == 1
    slow = hub.stream(lambda: {})
    await anext(slow)
    for n in range(1001):  # the slow one never reads: dropped once its queue is full
        hub.publish({"n": n})
        if n < 1000:
            await anext(stream)
    assert hub.clients == 1
    frames = [frame async for frame in slow]
    assert len(frames) == 0  # its stream ends at once: the browser reconnects for a fresh snapshot
