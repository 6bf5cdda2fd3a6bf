"""Risk's slim event models: the contract's types and constraints on what they keep, the rest
ignored, times in `datetime.UTC`, and the book booking the same from either model."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from tradebus.events import Bar, BarEvent, Envelope, Signal, SignalEvent, SignalState
from tradebus_risk.book import Book
from tradebus_risk.inbound import RiskBar, RiskBarEvent, RiskSignal, RiskSignalEvent, UtcTime
from tradebus_risk.limits import RiskLimits

sys.path.insert(0, str(Path(__file__).parent))
from risk_scenario import bar, plan, scenario_bars, scenario_signals, signal, with_detail

NOW = datetime(2024, 1, 2, 1, tzinfo=UTC)
PAIRS: list[tuple[type[Envelope], type[Envelope], type[BaseModel], type[BaseModel]]] = [
    (SignalEvent, RiskSignalEvent, Signal, RiskSignal),
    (BarEvent, RiskBarEvent, Bar, RiskBar),
]


@pytest.mark.parametrize(("event", "slim_event", "data", "slim"), PAIRS, ids=["signal", "bar"])
def test_the_kept_fields_have_the_contracts_types_and_constraints(
    event: type[Envelope], slim_event: type[Envelope], data: type[BaseModel], slim: type[BaseModel]
) -> None:
    for name, field in slim.model_fields.items():
        contract = data.model_fields[name]
        metadata = [m for m in field.metadata if m not in get_args(UtcTime)[1:]]  # but the UTC normaliser
        assert (field.annotation, metadata, field.default, field.is_required()) == (
            contract.annotation,
            contract.metadata,
            contract.default,
            contract.is_required(),
        ), name
    assert set(event.model_fields) == set(Envelope.model_fields) | {"data"} == set(slim_event.model_fields)
    assert (slim_event.EVENT_TYPE, slim.model_config) == (event.EVENT_TYPE, data.model_config)


def _as(model: type[Envelope], event: Envelope) -> Any:
    return model.model_validate_json(event.model_dump_json())


@pytest.mark.parametrize(
    ("event", "slim_event"),
    [
        (with_detail(signal("BTCUSDT", 0, SignalState.BUY, plan("100", "98", "106", "3"))), RiskSignalEvent),
        (bar("BTCUSDT", 3, "100", "101", "99.5", "100.5"), RiskBarEvent),
    ],
    ids=["signal", "bar"],
)
def test_a_full_event_decodes_to_what_risk_reads(event: Envelope, slim_event: type[Envelope]) -> None:
    slim = _as(slim_event, event)
    full = _as(type(event), event)
    assert slim.model_dump(exclude={"data"}) == full.model_dump(exclude={"data"})
    kept = set(type(slim.data).model_fields)
    assert slim.data.model_dump() == full.data.model_dump(include=kept)
    assert (
        orjson.loads(slim.model_dump_json())["data"]
        == orjson.loads(full.model_dump_json(include={"data": kept}))["data"]
    )
    assert _as(slim_event, slim) == slim  # an inbox row of either model loads


def test_times_are_decoded_into_datetime_utc() -> None:
    body = orjson.loads(bar("BTCUSDT", 0, "100", "101", "99.5", "100.5").model_dump_json())
    body["data"]["open_time"] = "2024-01-02T02:00:00+02:00"
    decoded = RiskBarEvent.model_validate_json(orjson.dumps(body)).data.open_time
    assert decoded == datetime(2024, 1, 2, tzinfo=UTC) and decoded.tzinfo is UTC
    assert BarEvent.model_validate_json(orjson.dumps(body)).data.open_time == decoded


def _spoiled(event: Envelope, spoil: Callable[[dict[str, Any]], object]) -> bytes:
    body = orjson.loads(event.model_dump_json())
    spoil(body["data"])
    return orjson.dumps(body)


_BUY = signal("BTCUSDT", 0, SignalState.BUY, plan("100", "98", "106", "3"))
_BAR = bar("BTCUSDT", 0, "100", "101", "99.5", "100.5")
_BAD: dict[str, bytes] = {
    "signal: lower-case symbol": _spoiled(_BUY, lambda d: d.update(symbol="btcusdt")),
    "signal: unknown interval": _spoiled(_BUY, lambda d: d.update(interval="7m")),
    "signal: naive bar time": _spoiled(_BUY, lambda d: d.update(bar_time="2024-01-02T00:00:00")),
    "signal: unknown state": _spoiled(_BUY, lambda d: d.update(state="MAYBE")),
    "signal: confidence above 1": _spoiled(_BUY, lambda d: d.update(confidence="1.5")),
    "signal: NaN price": _spoiled(_BUY, lambda d: d.update(price="NaN")),
    "signal: infinite stop": _spoiled(_BUY, lambda d: d["plan"].update(stop="Infinity")),
    "signal: targets missing": _spoiled(_BUY, lambda d: d["plan"].pop("targets")),
    "signal: model version missing": _spoiled(_BUY, lambda d: d["model"].pop("version")),
    "bar: naive open time": _spoiled(_BAR, lambda d: d.update(open_time="2024-01-02T00:00:00")),
    "bar: NaN low": _spoiled(_BAR, lambda d: d.update(low="NaN")),
    "bar: close missing": _spoiled(_BAR, lambda d: d.pop("close")),
    "bar: unknown interval": _spoiled(_BAR, lambda d: d.update(interval="2m")),
}


@pytest.mark.parametrize("raw", _BAD.values(), ids=_BAD.keys())
def test_what_risk_reads_is_validated_as_strictly_as_by_the_contract(raw: bytes) -> None:
    models = (SignalEvent, RiskSignalEvent) if b"signal.generated" in raw else (BarEvent, RiskBarEvent)
    for model in models:
        with pytest.raises(ValidationError):
            model.model_validate_json(raw)


def _replay(decode: Callable[[Envelope], Any]) -> list[str]:
    """The scripted replay on the pure book, its events given as `decode` makes them."""
    limits = RiskLimits()
    book = Book.fresh(limits)
    signals = {s.data.bar_time + timedelta(minutes=5): s for s in scenario_signals("BTCUSDT")}
    for b in scenario_bars("BTCUSDT"):
        if (s := signals.get(b.data.open_time)) is not None:
            book.decide(decode(with_detail(s)), NOW)
        book.apply_bar(decode(b))
    return [event.model_dump_json(exclude={"emitted_at"}) for _, event in book.changes.events]


def test_the_book_books_the_same_from_either_model() -> None:
    slim = _replay(lambda e: _as(RiskBarEvent if isinstance(e, BarEvent) else RiskSignalEvent, e))
    assert slim == _replay(lambda e: e)
    assert len(slim) == 17
