"""Numbers as a trader reads them: prices on the tick the bar prices show, ratios to 4 places."""

from __future__ import annotations

from decimal import Decimal

from tradebus.display import price, ratio, tick_of


def test_prices_go_on_the_tick_their_bars_are_quoted_on() -> None:
    assert tick_of("33568.45") == Decimal("0.01")
    assert tick_of("33568.45000000") == Decimal("0.01")  # Binance pads to 8 places
    assert tick_of("30000") == Decimal("0.01")  # never coarser than a cent
    assert tick_of("0.00012345") == Decimal("0.00000001")
    assert price("33568.45472040090", tick_of("33568.45")) == "33568.45"
    assert price("0.000123456789", tick_of("0.00012345")) == "0.00012346"
    assert price("n/a", Decimal("0.01")) == "n/a"


def test_ratios_get_four_places_or_as_asked() -> None:
    assert ratio("2.0000000000000000000000000001") == "2.0000"
    assert ratio("0.623478", 2) == "0.62"
    assert ratio("0.62345") == "0.6234"  # half to even
    assert ratio(None) == "None"
