"""Risk's slim signal model: the contract's types and constraints on what it keeps, the rest ignored."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from tradebus.events import Envelope, Signal, SignalEvent, SignalState
from tradebus_risk.book import Book
from tradebus_risk.limits import RiskLimits
from tradebus_risk.records import Account
from tradebus_risk.signals import RiskSignal, RiskSignalEvent

sys.path.insert(0, str(Path(__file__).parent))
from risk_scenario import plan, scenario_bars, scenario_signals, signal, with_detail

NOW = datetime(2024, 1, 2, 1, tzinfo=UTC)


def test_the_kept_fields_have_the_contracts_types_and_constraints() -> None:
    for name, field in RiskSignal.model_fields.items():
        contract = Signal.model_fields[name]
        assert (field.annotation, field.metadata, field.default, field.is_required()) == (
            contract.annotation,
            contract.metadata,
            contract.default,
            contract.is_required(),
        ), name
    envelope = {name for name in SignalEvent.model_fields if name != "data"}
    assert envelope == set(Envelope.model_fields) == set(RiskSignalEvent.model_fields) - {"data"}
    assert RiskSignalEvent.EVENT_TYPE == SignalEvent.EVENT_TYPE
    assert RiskSignal.model_config == Signal.model_config


def test_a_full_signal_decodes_to_what_risk_reads() -> None:
    full = with_detail(signal("BTCUSDT", 0, SignalState.BUY, plan("100", "98", "106", "3")))
    slim = RiskSignalEvent.model_validate_json(full.model_dump_json())
    assert slim.model_dump(exclude={"data"}) == full.model_dump(exclude={"data"})
    assert slim.data.model_dump() == full.data.model_dump(include=set(RiskSignal.model_fields))
    assert RiskSignalEvent.model_validate_json(slim.model_dump_json()) == slim  # an inbox row of either loads


_BAD: dict[str, Callable[[dict[str, Any]], None]] = {
    "lower-case symbol": lambda d: d.update(symbol="btcusdt"),
    "unknown interval": lambda d: d.update(interval="7m"),
    "naive bar time": lambda d: d.update(bar_time="2024-01-02T00:00:00"),
    "unknown state": lambda d: d.update(state="MAYBE"),
    "confidence above 1": lambda d: d.update(confidence="1.5"),
    "NaN price": lambda d: d.update(price="NaN"),
    "infinite stop": lambda d: d["plan"].update(stop="Infinity"),
    "targets missing": lambda d: d["plan"].pop("targets"),
    "model version missing": lambda d: d["model"].pop("version"),
}


@pytest.mark.parametrize("spoil", _BAD.values(), ids=_BAD.keys())
def test_what_risk_reads_is_validated_as_strictly_as_by_the_contract(spoil: Callable[[dict[str, Any]], None]) -> None:
    body = orjson.loads(signal("BTCUSDT", 0, SignalState.BUY, plan("100", "98", "106", "3")).model_dump_json())
    spoil(body["data"])
    raw = orjson.dumps(body)
    for model in (SignalEvent, RiskSignalEvent):
        with pytest.raises(ValidationError):
            model.model_validate_json(raw)


def _replay(decode: Callable[[SignalEvent], SignalEvent | RiskSignalEvent]) -> list[str]:
    """The scripted replay on the pure book, its signals given as `decode` makes them."""
    limits = RiskLimits()
    initial = limits.initial_balance
    book = Book(Account(initial, initial, peak_equity=initial, day_start_equity=initial), {}, {}, {}, {}, limits)
    signals = {s.data.bar_time + timedelta(minutes=5): s for s in scenario_signals("BTCUSDT")}
    for bar in scenario_bars("BTCUSDT"):
        if (s := signals.get(bar.data.open_time)) is not None:
            book.decide(decode(with_detail(s)), NOW)
        book.apply_bar(bar)
    return [event.model_dump_json(exclude={"emitted_at"}) for _, event in book.changes.events]


def test_the_book_books_the_same_from_either_model() -> None:
    slim = _replay(lambda full: RiskSignalEvent.model_validate_json(full.model_dump_json()))
    assert slim == _replay(lambda full: full)
    assert len(slim) == 17
