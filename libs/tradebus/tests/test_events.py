"""Event models: JSON shape, decimal strings, deterministic ids, clear validation errors."""

from __future__ import annotations

import uuid
from decimal import Decimal

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from tradebus.events import (
    _NAMESPACE,
    BarEvent,
    BarSource,
    Mode,
    _plain_decimal,
    encode_bar_event,
    make_bar,
    ohlc_problem,
    trace_id_for,
)
from tradebus.timeframes import bucket_start, ms_to_datetime


def _bar(revision: int = 0, close: str = "100.10") -> BarEvent:
    bar = make_bar(
        "BTCUSDT",
        "5m",
        1_704_067_200_000,
        Decimal("100.00"),
        Decimal("101.5"),
        Decimal("99.25"),
        Decimal(close),
        Decimal("12.00000001"),
        Decimal("1201.5"),
        42,
        BarSource.AGGREGATED,
        revision=revision,
    )
    return BarEvent.of(bar, source="aggregator", mode=Mode.REPLAY, trace_id="t-1")


def test_json_shape() -> None:
    doc = orjson.loads(_bar().model_dump_json())
    assert {k for k in doc if k != "data"} == {
        "event_id",
        "event_type",
        "schema_version",
        "source",
        "emitted_at",
        "trace_id",
        "mode",
    }
    assert doc["event_id"] == "bar:BTCUSDT:5m:1704067200000"
    assert doc["event_type"] == "bar.closed"
    assert doc["source"] == "aggregator" and doc["data"]["source"] == "aggregated"
    assert doc["mode"] == "replay"
    assert doc["emitted_at"].endswith("Z")
    data = doc["data"]
    assert data["open_time"] == "2024-01-01T00:00:00Z"
    assert data["close_time"] == "2024-01-01T00:04:59.999000Z"
    assert data["volume"] == "12.00000001" and data["close"] == "100.10"


def test_round_trip_is_exact() -> None:
    event = _bar()
    again = BarEvent.model_validate_json(event.model_dump_json())
    assert again == event
    assert again.data.volume == Decimal("12.00000001")


def test_msg_id_carries_revision() -> None:
    assert _bar().msg_id == "bar:BTCUSDT:5m:1704067200000"
    assert _bar(revision=2).msg_id == "bar:BTCUSDT:5m:1704067200000:r2"
    assert _bar(revision=2).event_id == _bar().event_id


def test_trace_id_is_deterministic() -> None:
    assert trace_id_for("bar:X:1m:0") == trace_id_for("bar:X:1m:0") != trace_id_for("bar:X:1m:60000")


@given(st.text(max_size=60))
def test_trace_id_is_the_uuid5_of_the_event_id(event_id: str) -> None:
    assert trace_id_for(event_id) == uuid.uuid5(_NAMESPACE, event_id).hex


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("data", "close"), "NaN", "finite"),
        (("data", "volume"), "-1", "greater than or equal to 0"),
        (("data", "symbol"), "btcusdt", "upper-case"),
        (("data", "interval"), "2m", "Input should be"),
        (("data", "open_time"), "2024-01-01T00:00:00", "timezone"),
    ],
)
def test_bad_fields_are_refused_with_a_reason(path: tuple[str, str], value: str, message: str) -> None:
    doc = orjson.loads(_bar().model_dump_json())
    doc[path[0]][path[1]] = value
    with pytest.raises(ValidationError, match=message):
        BarEvent.model_validate_json(orjson.dumps(doc))


def test_ohlc_problem() -> None:
    assert _bar().data.ohlc_problem() is None
    assert "close 105 outside" in (ohlc_problem(Decimal(100), Decimal("101.5"), Decimal("99.25"), Decimal(105)) or "")


def test_tiny_amounts_are_plain_decimals() -> None:
    bar = _bar().data.model_copy(update={"volume": Decimal("0.00000001")})
    assert '"volume":"0.00000001"' in bar.model_dump_json()


@given(st.decimals(allow_nan=False, allow_infinity=False))
@example(Decimal("0E-8"))
@example(Decimal("1E+3"))
@example(Decimal("-0.0000001"))
@example(Decimal("123.4500"))
def test_amounts_are_written_in_plain_notation(value: Decimal) -> None:
    assert _plain_decimal(value) == format(value, "f")


_amounts = st.decimals(min_value=0, max_value=Decimal("1e12"), allow_nan=False, allow_infinity=False)


@given(
    price=_amounts,
    volume=_amounts,
    interval=st.sampled_from(["1m", "5m", "1h", "1w"]),
    minute=st.integers(min_value=0, max_value=10_000_000),
    trades=st.integers(min_value=0, max_value=10**9),
    revision=st.integers(min_value=0, max_value=5),
    complete=st.booleans(),
    source=st.sampled_from(list(BarSource)),
    mode=st.sampled_from(list(Mode)),
    emitted_ms=st.integers(min_value=0, max_value=4_102_444_800_000),
    trace_id=st.one_of(st.none(), st.text(alphabet="0123456789abcdef", min_size=1, max_size=32)),
)
@example(price=Decimal("1E-8"), volume=Decimal("0"), interval="1m", minute=0, trades=0, revision=0, complete=True,
         source=BarSource.REPLAY, mode=Mode.REPLAY, emitted_ms=0, trace_id=None)  # fmt: skip
def test_encode_bar_event_is_the_events_own_json(
    price: Decimal,
    volume: Decimal,
    interval: str,
    minute: int,
    trades: int,
    revision: int,
    complete: bool,
    source: BarSource,
    mode: Mode,
    emitted_ms: int,
    trace_id: str | None,
) -> None:
    open_ms = bucket_start(minute * 60_000, interval)
    bar = make_bar(
        "BTCUSDT", interval, open_ms, price, price, price, price, volume, volume, trades, source,  # type: ignore[arg-type]
        complete=complete, revision=revision,
    )  # fmt: skip
    emitted_at = ms_to_datetime(emitted_ms)
    event = BarEvent.of(bar, source="ingest", mode=mode, trace_id=trace_id, emitted_at=emitted_at)
    payload, msg_id = encode_bar_event(bar, source="ingest", mode=mode, trace_id=trace_id, emitted_at=emitted_at)
    assert payload == event.model_dump_json().encode()
    assert msg_id == event.msg_id
