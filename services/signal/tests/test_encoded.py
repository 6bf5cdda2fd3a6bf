"""The engine writes a signal's JSON itself, from parts it encodes once: it must be pydantic's."""

from __future__ import annotations

from decimal import Decimal

import pytest
from test_golden import _events, run_engine

from tradebus.events import SignalEvent
from tradebus_signal.model import to_decimal


def test_the_engines_json_is_pydantics_byte_for_byte() -> None:
    signals = run_engine(list(_events()))
    features = [v for e in signals for v in e.data.features.values()]
    assert {e.data.plan is None for e in signals} == {True, False}
    assert any(v != 0 and abs(v) < Decimal("0.0001") for v in features)  # texts with an exponent
    for event in signals:
        assert event.model_dump_json() == SignalEvent.model_dump_json(event)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_feature_that_is_not_finite_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="not finite"):
        to_decimal(value)
