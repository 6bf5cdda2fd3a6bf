"""`tradebus tail` formatting: one readable line per message, whatever the payload."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson

from tradebus.events import (
    BarEvent,
    BarSource,
    FailurePoint,
    Heartbeat,
    HeartbeatEvent,
    Readiness,
    ReadinessEvent,
    ReadinessStatus,
    Severity,
    make_bar,
)
from tradebus_cli.eventfmt import SUMMARY_WIDTH, describe, summarize

RECEIVED = datetime(2024, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
EMITTED = datetime(2024, 1, 1, 0, 1, 0, 250_000, tzinfo=UTC)


def _bar_event(**overrides: object) -> BarEvent:
    bar = make_bar(
        "BTCUSDT", "1m", 1_704_067_200_000, Decimal("42000.10"), Decimal("42100"), Decimal("41950.5"),
        Decimal("42050"), Decimal("12.345"), Decimal("518000"), 99, BarSource.REPLAY, **overrides,  # type: ignore[arg-type]
    )  # fmt: skip
    return BarEvent.of(bar, source="ingest").model_copy(update={"emitted_at": EMITTED})


def test_a_bar_shows_symbol_interval_open_time_and_ohlcv() -> None:
    line = describe("bars.1m.BTCUSDT", _bar_event().model_dump_json().encode(), RECEIVED)
    assert line.time == "00:01:00.250"
    assert line.subject == "bars.1m.BTCUSDT"
    assert line.event_type == "bar.closed"
    assert line.summary == "BTCUSDT 1m 2024-01-01T00:00:00Z O=42000.10 H=42100 L=41950.5 C=42050 V=12.345"
    assert line.render().plain == f"00:01:00.250 bars.1m.BTCUSDT bar.closed {line.summary}"


def test_an_incomplete_or_corrected_bar_says_so() -> None:
    line = describe("bars.5m.BTCUSDT", _bar_event(complete=False, revision=2).model_dump_json().encode(), RECEIVED)
    assert line.summary.endswith("V=12.345 incomplete rev=2")


def test_readiness_names_the_failing_points() -> None:
    readiness = Readiness(
        status=ReadinessStatus.DEGRADED,
        failure_points=[
            FailurePoint(name="bus", ok=True, severity=Severity.CRITICAL, detail="ok"),
            FailurePoint(name="offline_data_source", ok=False, severity=Severity.WARNING, detail="synthetic"),
        ],
        checked_at=EMITTED,
    )
    event = ReadinessEvent.build(event_id="readiness:1", source="telemetry", trace_id="t", data=readiness)
    line = describe("telemetry.readiness", event.model_dump_json().encode(), RECEIVED)
    assert line.summary == "DEGRADED failing: offline_data_source"


def test_a_heartbeat_shows_status_and_failing_checks() -> None:
    beat = Heartbeat(
        service="ingest", instance="i-1", started_at=EMITTED, status="degraded", checks={"bus": True, "feed": False}
    )
    event = HeartbeatEvent.build(event_id="heartbeat:ingest:i-1:1", source="ingest", trace_id="t", data=beat)
    line = describe("telemetry.heartbeat.ingest", event.model_dump_json().encode(), RECEIVED)
    assert line.summary == "ingest i-1 degraded failing: feed"


def test_an_unknown_event_shows_its_scalar_fields() -> None:
    payload = {
        "event_type": "thing.happened",
        "emitted_at": "2024-01-01T00:00:00Z",
        "data": {"a": 1, "b": "x", "nested": {"c": 2}},
    }
    line = describe("misc.subject", orjson.dumps(payload), RECEIVED)
    assert (line.event_type, line.summary) == ("thing.happened", "a=1 b=x")


def test_a_known_event_with_missing_fields_falls_back_to_its_scalars() -> None:
    assert summarize("bar.closed", {"symbol": "BTCUSDT", "interval": "1m"}) == "symbol=BTCUSDT interval=1m"


def test_json_that_is_not_an_envelope_is_summarised_whole() -> None:
    line = describe("raw.json", b'{"hello": "world"}', RECEIVED)
    assert (line.time, line.event_type, line.summary) == ("03:04:05.678", "-", "hello=world")


def test_a_non_json_payload_is_shown_raw() -> None:
    for payload in (b"plain text \xff", b"[1, 2]", b""):
        line = describe("raw.subject", payload, RECEIVED)
        assert (line.time, line.event_type) == ("03:04:05.678", "-")
        assert line.summary == payload.decode(errors="replace")


def test_a_long_summary_is_cut() -> None:
    summary = summarize("x", {"detail": "y" * 500})
    assert len(summary) == SUMMARY_WIDTH
    assert summary.endswith("…")


def test_a_daily_row_shows_its_win_rate_to_four_places() -> None:
    data = {
        "day": "2024-01-01",
        "trades": 3,
        "wins": 2,
        "win_rate": "0.66666667",
        "gross_pnl": "12.5",
        "net_pnl": "10.25",
        "fees": "2.25",
        "profit_factor": None,
        "max_drawdown": "4.5",
        "sharpe": None,
    }
    assert summarize("performance.daily_computed", data) == (
        "2024-01-01 trades=3 win_rate=0.6667 net=10.25 fees=2.25 max_dd=4.5"
    )
