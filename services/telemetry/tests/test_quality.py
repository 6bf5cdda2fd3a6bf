"""Bar quality checks, without a bus: each check, and check-then-commit on retry."""

from __future__ import annotations

from decimal import Decimal
from typing import get_args

from helpers import bar
from prometheus_client import REGISTRY

from tradebus.events import Bar, Mode, Severity
from tradebus_telemetry.app import build_service
from tradebus_telemetry.quality import (
    DUPLICATE_MEMORY,
    IssueKind,
    QualityChecker,
    SeriesState,
    advance,
    check_prices,
    check_sequence,
)
from tradebus_telemetry.settings import TelemetrySettings

JUMP = Decimal("0.10")


def _state(*bars: Bar) -> SeriesState:
    state = None
    for b in bars:
        state = advance(state, b)
    assert state is not None
    return state


def _kinds(found: list) -> list[tuple[str, Severity]]:
    return [(f.kind, f.severity) for f in found]


def test_consistent_bar_has_no_price_issue() -> None:
    assert check_prices(bar(0)) == []


def test_ohlc_inconsistencies_are_critical() -> None:
    assert _kinds(check_prices(bar(0, high="98", low="99", open_="98.5", close="98.5"))) == [
        ("ohlc", Severity.CRITICAL)
    ]
    assert "high" in check_prices(bar(0, high="98", low="99"))[0].detail
    assert "open 102" in check_prices(bar(0, open_="102"))[0].detail
    assert "close 98" in check_prices(bar(0, close="98"))[0].detail
    assert "non-positive" in check_prices(bar(0, open_="0", low="0", close="0"))[0].detail


def test_negative_volume_is_critical() -> None:
    # Bar validation refuses a negative volume; a bar built around it still gets checked.
    bad = bar(0).model_copy(update={"volume": Decimal("-1")})
    assert _kinds(check_prices(bad)) == [("volume", Severity.CRITICAL)]


def test_gap_counts_missing_bars() -> None:
    found = check_sequence(_state(bar(0)), bar(4), JUMP)
    assert _kinds(found) == [("gap", Severity.WARNING)]
    assert found[0].detail.startswith("3 missing 1m bar(s) from 2023-11-14T22:15:00.000Z")
    assert check_sequence(_state(bar(0)), bar(1), JUMP) == []


def test_late_bar_filling_a_gap_is_not_an_issue() -> None:
    assert check_sequence(_state(bar(0), bar(4)), bar(2), JUMP) == []


def test_duplicates() -> None:
    state = _state(bar(0), bar(1))
    assert check_sequence(state, bar(0), JUMP) == [], "a redelivery is not an issue"
    assert _kinds(check_sequence(state, bar(0, close="100.7"), JUMP)) == [("duplicate", Severity.WARNING)]
    assert check_sequence(state, bar(0, close="100.7", revision=1), JUMP) == [], "a correction is not an issue"


def test_price_jump_above_threshold_only() -> None:
    state = _state(bar(0, close="100"))
    assert check_sequence(state, bar(1, close="110", high="111"), JUMP) == [], "exactly 10% is not a jump"
    found = check_sequence(state, bar(1, open_="100", close="111", high="112"), JUMP)
    assert _kinds(found) == [("price_jump", Severity.WARNING)]
    assert "11.00%" in found[0].detail
    assert _kinds(check_sequence(state, bar(1, low="80", close="85"), JUMP)) == [("price_jump", Severity.WARNING)]


def test_checker_remembers_only_what_was_committed() -> None:
    checker = QualityChecker(JUMP)
    checker.commit(checker.check([(bar(0), Mode.LIVE)]))
    batch = [(bar(3), Mode.LIVE), (bar(3, close="100.9"), Mode.LIVE), (bar(4, high="98"), Mode.LIVE)]
    first = checker.check(batch)
    assert [_kinds(f) for f in first.findings] == [
        [("gap", Severity.WARNING)],
        [("duplicate", Severity.WARNING)],
        [("ohlc", Severity.CRITICAL)],
    ]
    retry = checker.check(batch)
    assert retry.findings == first.findings, "an unstored batch is judged the same way again"
    checker.commit(retry)
    assert checker.check([(bar(3, close="100.9"), Mode.LIVE)]).findings == [[]]


def test_series_are_separate_per_symbol_and_mode() -> None:
    checker = QualityChecker(JUMP)
    checker.commit(checker.check([(bar(0), Mode.LIVE)]))
    eth = bar(10, symbol="ETHUSDT", open_="3000", high="3001", low="2999", close="3000")
    later = [(bar(10), Mode.REPLAY), (eth, Mode.LIVE)]
    assert checker.check(later).findings == [[], []], "the first bar of a series only sets its baseline"


def test_memory_of_recent_bars_is_bounded_and_kept_across_batches() -> None:
    checker = QualityChecker(JUMP)
    minutes = range(DUPLICATE_MEMORY + 60)
    for start in range(0, len(minutes), 100):
        checker.commit(checker.check([(bar(m), Mode.LIVE) for m in minutes[start : start + 100]]))
    state = checker._states[("BTCUSDT", "1m", Mode.LIVE)]
    assert len(state.seen) == DUPLICATE_MEMORY and not state.added
    newest = minutes[-1]
    assert _kinds(checker.check([(bar(newest, close="100.7"), Mode.LIVE)]).findings[0]) == [
        ("duplicate", Severity.WARNING)
    ]
    assert checker.check([(bar(0, close="100.7"), Mode.LIVE)]).findings == [[]], "forgotten: just a late bar"


def test_quality_issues_are_counted_from_zero_for_every_configured_symbol() -> None:
    """The series exist at 0 once the service is built, so `increase()` counts the first issue."""
    build_service(TelemetrySettings(symbols=("ZEROUSDT",)))
    counted = {
        (kind, severity.value): REGISTRY.get_sample_value(
            "tradebus_telemetry_quality_issues_total", {"symbol": "ZEROUSDT", "kind": kind, "severity": severity.value}
        )
        for kind in get_args(IssueKind)
        for severity in Severity
    }
    assert counted == dict.fromkeys(counted, 0.0)
