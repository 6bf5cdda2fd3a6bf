"""The facts an event has on its own, held by its model: nothing can build or decode an invalid one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tradebus.events import (
    Bar,
    BarSource,
    Direction,
    Heartbeat,
    HeartbeatEvent,
    Trade,
    TradePlan,
    make_bar,
)
from tradebus.timeframes import INTERVALS, MINUTE_MS, bucket_start, close_time_ms, interval_ms, ms_to_datetime

MONDAY_MS = 1_709_510_400_000  # 2024-03-04T00:00:00Z, a bucket start of every interval


def _bar(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = make_bar(
        "BTCUSDT",
        "5m",
        MONDAY_MS,
        Decimal("100"),
        Decimal("101"),
        Decimal("99"),
        Decimal("100.5"),
        Decimal("2"),
        Decimal("200"),
        3,
        BarSource.BINANCE_WS,
    ).model_dump()
    return fields | changes


def test_a_consistent_bar_is_built() -> None:
    assert Bar(**_bar()).close == Decimal("100.5")


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"high": Decimal("98")}, "low 99 > high 98"),
        ({"low": Decimal("200"), "high": Decimal("300")}, "open 100 outside"),
        ({"close": Decimal("101.01")}, "close 101.01 outside"),
        ({"open": Decimal("98.99")}, "open 98.99 outside"),
        ({"low": Decimal("-1"), "open": Decimal("-1"), "close": Decimal("-1")}, "negative"),
        ({"volume": Decimal("-0.1")}, "greater than or equal to 0"),
        ({"quote_volume": Decimal("-1")}, "greater than or equal to 0"),
        ({"trades": -1}, "greater than or equal to 0"),
        ({"open_time": ms_to_datetime(MONDAY_MS + MINUTE_MS)}, "not aligned to 5m"),
        ({"open_time": ms_to_datetime(MONDAY_MS) + timedelta(microseconds=500)}, "not aligned to 5m"),
        ({"close_time": ms_to_datetime(MONDAY_MS + 5 * MINUTE_MS)}, "does not close"),
        ({"interval": "1w", "open_time": ms_to_datetime(MONDAY_MS + 86_400_000)}, "not aligned to 1w"),
    ],
)
def test_a_bar_contradicting_itself_cannot_be_built(changes: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        Bar(**_bar(**changes))


def test_a_bar_contradicting_itself_cannot_be_decoded() -> None:
    bad = Bar.model_construct(**_bar(high=Decimal("98"))).model_dump_json()
    with pytest.raises(ValidationError, match="low 99 > high 98"):
        Bar.model_validate_json(bad)


@given(st.sampled_from(INTERVALS), st.integers(0, 10**7))
def test_every_bucket_start_is_a_bar_and_nothing_else_is(interval: str, minute: int) -> None:
    open_ms = MONDAY_MS + minute * MINUTE_MS
    fields = _bar(
        interval=interval,
        open_time=ms_to_datetime(open_ms),
        close_time=ms_to_datetime(close_time_ms(open_ms, interval)),
    )
    if bucket_start(open_ms, interval) == open_ms:
        assert Bar(**fields).open_ms == open_ms
    else:
        with pytest.raises(ValidationError, match="not aligned"):
            Bar(**fields)
    assert interval_ms(interval) % MINUTE_MS == 0


def _plan(entry: str, stop: str, *targets: str, rr: str = "2") -> TradePlan:
    return TradePlan(
        entry=Decimal(entry), stop=Decimal(stop), targets=[Decimal(t) for t in targets], risk_reward=Decimal(rr)
    )


def test_coherent_plans_of_both_directions() -> None:
    assert _plan("100", "98", "104", "106").stop == 98
    assert _plan("100", "102", "96", "94").stop == 102
    assert _plan("1", "3", "0.5", "-1").targets[-1] == -1  # a short's far target below zero: kept


@pytest.mark.parametrize(
    ("entry", "stop", "targets", "why"),
    [
        ("100", "100", ("104",), "stop 100 equals entry"),
        ("100", "98", ("99",), "not above entry"),
        ("100", "102", ("101",), "not below entry"),
        ("0", "1", ("2",), "greater than 0"),
        ("100", "-1", ("104",), "greater than 0"),
        ("100", "98", (), "at least 1 item"),
    ],
)
def test_incoherent_plans_are_refused(entry: str, stop: str, targets: tuple[str, ...], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        _plan(entry, stop, *targets)


def test_a_negative_risk_reward_is_refused() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        _plan("100", "98", "104", rr="-1")


def _trade(**changes: Any) -> Trade:
    at = datetime(2024, 3, 4, 12, tzinfo=UTC)
    fields: dict[str, Any] = {
        "trade_id": "t1",
        "symbol": "BTCUSDT",
        "strategy": "s",
        "direction": Direction.LONG,
        "quantity": Decimal("1"),
        "entry_price": Decimal("100"),
        "exit_price": Decimal("101"),
        "entry_time": at,
        "exit_time": at + timedelta(hours=1),
        "gross_pnl": Decimal("1"),
        "fees": Decimal("0.1"),
        "net_pnl": Decimal("0.9"),
        "exit_reason": "target",
    }
    return Trade(**(fields | changes))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"exit_time": datetime(2024, 3, 4, 11, tzinfo=UTC)}, "before entry_time"),
        ({"entry_price": Decimal("0")}, "greater than 0"),
        ({"exit_price": Decimal("-101")}, "greater than 0"),
        ({"fees": Decimal("-1")}, "greater than or equal to 0"),
    ],
)
def test_a_trade_that_cannot_have_happened_is_refused(changes: dict[str, Any], why: str) -> None:
    assert _trade().net_pnl == Decimal("0.9")
    with pytest.raises(ValidationError, match=why):
        _trade(**changes)


def test_a_heartbeat_speaks_only_for_its_emitter() -> None:
    beat = Heartbeat(service="risk", instance="i", started_at=datetime(2024, 1, 1, tzinfo=UTC), status="ok")
    assert HeartbeatEvent.build(event_id="h", source="risk", trace_id="t", data=beat).source == "risk"
    with pytest.raises(ValidationError, match="heartbeat of 'risk' emitted by 'signal'"):
        HeartbeatEvent.build(event_id="h", source="signal", trace_id="t", data=beat)
