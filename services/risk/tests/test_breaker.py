"""Circuit breakers: the transitions of the pure state machine, then the risk service on real
NATS and PostgreSQL tripping on fill failures (and half-opening, probing, closing in event
time, whatever the batching), on a critical bar and a live telemetry issue (manual reset with
the API token), and on a fast equity drop (account-wide)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client

from tradebus import subjects
from tradebus.events import (
    Envelope,
    Mode,
    QualityIssue,
    QualityIssueEvent,
    Severity,
    SignalState,
    trace_id_for,
)
from tradebus.testing import admin_publisher, wait_for
from tradebus.timeframes import datetime_to_ms
from tradebus_risk.app import build_service
from tradebus_risk.breaker import ACCOUNT, BreakerLimits, Breakers
from tradebus_risk.rules import Reason, Verdict
from tradebus_risk.settings import RiskSettings

sys.path.insert(0, str(Path(__file__).parent))
from risk_scenario import bar, plan, signal
from test_service import TOKEN, _publish, _service, collecting, serving

T = datetime(2024, 1, 2, tzinfo=UTC)
ACCEPTED = Verdict("accepted", Reason.ENTRY, "sized")


def _minute(n: int) -> datetime:
    return T + timedelta(minutes=n)


# --------------------------------------------------------------------------- pure transitions
def test_fill_failures_open_then_cool_down_half_open_and_a_filled_probe_closes() -> None:
    breakers = Breakers(BreakerLimits(fill_failures=2, cooldown=timedelta(minutes=10)))
    breakers.fill_failed("BTCUSDT", "a", _minute(1), Mode.REPLAY, "cancelled")
    breakers.fill_ok("BTCUSDT", "b", _minute(2), Mode.REPLAY)  # a fill in between: the count starts again
    breakers.fill_failed("BTCUSDT", "c", _minute(3), Mode.REPLAY, "cancelled")
    assert breakers.get("BTCUSDT").state == "closed"
    breakers.fill_failed("BTCUSDT", "d", _minute(4), Mode.REPLAY, "cancelled")
    assert breakers.get("BTCUSDT").state == "open"
    early = breakers.screen("BTCUSDT", _minute(13), Mode.REPLAY, ACCEPTED, "e")
    assert early.reason is Reason.CIRCUIT_BREAKER and "until 2024-01-02T00:14:00" in early.detail
    assert breakers.screen("ETHUSDT", _minute(13), Mode.REPLAY, ACCEPTED, "f") == ACCEPTED  # per symbol
    probe = breakers.screen("BTCUSDT", _minute(14), Mode.REPLAY, ACCEPTED, "g")
    assert probe.reason is Reason.ENTRY and breakers.get("BTCUSDT").state == "half_open"
    other = breakers.screen("BTCUSDT", _minute(15), Mode.REPLAY, ACCEPTED, "h")
    assert other.reason is Reason.CIRCUIT_BREAKER and "probe g" in other.detail
    breakers.fill_ok("BTCUSDT", "g", _minute(15), Mode.REPLAY)
    assert breakers.get("BTCUSDT").state == "closed"
    moves = [(t.data.state, t.data.trigger, t.data.at) for t in breakers.transitions]
    assert moves == [
        ("open", "fill_failures", _minute(4)),
        ("half_open", "cooldown", _minute(14)),
        ("closed", "probe_filled", _minute(15)),
    ]
    assert [t.subject for t in breakers.transitions] == ["exec.breaker.BTCUSDT"] * 3
    assert [t.audit.decision for t in breakers.transitions] == ["breaker_open", "breaker_half_open", "breaker_closed"]


def test_a_failed_probe_opens_again_and_a_manual_reset_closes() -> None:
    breakers = Breakers(BreakerLimits(fill_failures=3, cooldown=timedelta(minutes=5)))
    breakers.bad_bar("BTCUSDT", _minute(0), Mode.LIVE, "non-positive low 0")
    breakers.screen("BTCUSDT", _minute(5), Mode.LIVE, ACCEPTED, "probe")
    breakers.fill_failed("BTCUSDT", "probe", _minute(6), Mode.LIVE, "cancelled")  # one failure of the probe is enough
    state = breakers.get("BTCUSDT")
    assert (state.state, state.trigger, state.reopens_at, state.trips) == ("open", "fill_failures", _minute(11), 2)
    assert breakers.reset(None, _minute(7), Mode.LIVE) == ["BTCUSDT"]
    assert breakers.get("BTCUSDT").state == "closed" and breakers.transitions[-1].data.trigger == "manual_reset"


def test_equity_falling_faster_than_the_rate_trips_the_account() -> None:
    breakers = Breakers(BreakerLimits(equity_drop_pct=Decimal("0.05"), equity_window=timedelta(hours=1)))
    breakers.equity(_minute(0), Decimal(10000), Mode.REPLAY)
    breakers.equity(_minute(10), Decimal(10400), Mode.REPLAY)  # a new high: the reference
    breakers.equity(_minute(20), Decimal(9900), Mode.REPLAY)  # 4.8 % below it
    assert breakers.get(ACCOUNT).state == "closed"
    breakers.equity(_minute(80), Decimal(9800), Mode.REPLAY)  # the reference is older than the window: restart
    breakers.equity(_minute(90), Decimal(9300), Mode.REPLAY)  # 5.1 % below 9800 within the window
    assert breakers.get(ACCOUNT).state == "open"
    verdict = breakers.screen("ETHUSDT", _minute(91), Mode.REPLAY, ACCEPTED, "x")
    assert verdict.reason is Reason.CIRCUIT_BREAKER and verdict.detail.startswith("ACCOUNT breaker open (equity_drop")


# --------------------------------------------------------------------------- the service
def _fill_failure_replay(symbol: str) -> tuple[list[Envelope], list[Envelope]]:
    """BUYs at C = 5, 10, 15 whose fill bars open at 70 (20 units: 1,400 < the 1,500 minimum
    notional: cancelled); the third failure trips at 00:15 (cool-down 10 min), the BUY at C = 20
    is refused, the BUY at C = 25 is the probe, filled at bar 25: closed. Then a SELL at C = 30."""
    signals: list[Envelope] = [
        signal(symbol, m, SignalState.BUY, plan("100", "95", "200", "20")) for m in range(0, 25, 5)
    ]
    signals.append(signal(symbol, 25, SignalState.SELL))
    bars: list[Envelope] = [
        bar(symbol, m, "70", "101", "69", "100") if m in (5, 10, 15) else bar(symbol, m, "100", "101", "99", "100")
        for m in range(36)
    ]
    return signals, bars


async def _breaker_events(seen: list[tuple[str, dict]], n: int) -> list[tuple[str, str, str, str]]:
    async def enough() -> bool:
        return sum(1 for kind, _ in seen if kind == "breaker") >= n

    await wait_for(enough, timeout=20, what=f"{n} breaker events")
    return [
        (b["data"]["state"], b["data"]["trigger"], b["data"]["at"], b["event_id"]) for k, b in seen if k == "breaker"
    ]


@pytest.mark.parametrize(("order", "bars_batch"), [("signals_first", 1000), ("bars_first", 1)])
async def test_fill_failures_trip_and_the_cool_down_probe_closes_in_event_time(
    order: str,
    bars_batch: int,
    nats_url: str,
    database_url: str,
    js_client: Client,
    symbol: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RISK_MIN_NOTIONAL", "1500")
    monkeypatch.setenv("RISK_BREAKER_COOLDOWN_S", "600")
    signals, bars = _fill_failure_replay(symbol)
    service = _service(nats_url, database_url, bars_batch=bars_batch)
    async with serving(service, js_client), collecting(js_client, symbol) as seen:
        await _publish(service, [*signals, *bars] if order == "signals_first" else [*bars, *signals])
        events = await _breaker_events(seen, 3)

        async def traded() -> bool:
            return await service.pool.fetchval("SELECT count(*) FROM trades WHERE symbol = $1", symbol) == 1

        await wait_for(traded, timeout=20, what="the probe's round trip")
        audit = await service.pool.fetch(
            "SELECT decision, reason, event_time FROM audit WHERE symbol = $1 ORDER BY event_time, id", symbol
        )
        row = await service.pool.fetchrow("SELECT state, trips, fill_failures FROM breaker WHERE scope = $1", symbol)
    ms = (T + timedelta(minutes=15)).timestamp() * 1000
    assert events == [
        ("open", "fill_failures", "2024-01-02T00:15:00Z", f"breaker:{symbol}:1:open:{ms:.0f}"),
        ("half_open", "cooldown", "2024-01-02T00:25:00Z", f"breaker:{symbol}:1:half_open:{ms + 600_000:.0f}"),
        ("closed", "probe_filled", "2024-01-02T00:25:00Z", f"breaker:{symbol}:1:closed:{ms + 600_000:.0f}"),
    ]
    rows = [(r["decision"], r["reason"], r["event_time"].strftime("%H:%M")) for r in audit]
    assert rows == [
        ("accepted", "entry", "00:05"),
        ("accepted", "entry", "00:10"),
        ("accepted", "entry", "00:15"),
        ("breaker_open", "fill_failures", "00:15"),
        ("rejected", "circuit_breaker", "00:20"),
        ("breaker_half_open", "cooldown", "00:25"),
        ("accepted", "entry", "00:25"),
        ("breaker_closed", "probe_filled", "00:25"),
        ("accepted", "exit_signal", "00:30"),
    ]
    rejected = [b["data"] for k, b in seen if k == "rejected"]
    assert [r["reason"] for r in rejected] == ["circuit_breaker"] and "fill_failures" in rejected[0]["detail"]
    assert (row["state"], row["trips"], row["fill_failures"]) == ("closed", 1, 0)


async def test_a_restart_keeps_the_count_of_fill_failures(
    nats_url: str, database_url: str, js_client: Client, symbol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay above, risk stopped after two failures: the restarted service trips at the third."""
    monkeypatch.setenv("RISK_MIN_NOTIONAL", "1500")
    monkeypatch.setenv("RISK_BREAKER_COOLDOWN_S", "600")
    signals, bars = _fill_failure_replay(symbol)
    async with collecting(js_client, symbol) as seen:
        first = _service(nats_url, database_url)
        async with serving(first, js_client):
            await _publish(first, [*signals[:2], *bars[:12]])

            async def two_failures() -> bool:
                count = await first.pool.fetchval("SELECT fill_failures FROM breaker WHERE scope = $1", symbol)
                return count == 2

            await wait_for(two_failures, what="two fill failures")
        second = _service(nats_url, database_url)
        async with serving(second, js_client):
            await _publish(second, [*signals[2:], *bars[12:]])
            events = await _breaker_events(seen, 3)
    assert [e[:3] for e in events] == [
        ("open", "fill_failures", "2024-01-02T00:15:00Z"),
        ("half_open", "cooldown", "2024-01-02T00:25:00Z"),
        ("closed", "probe_filled", "2024-01-02T00:25:00Z"),
    ]


async def test_a_critical_bar_and_a_live_stale_feed_trip_and_the_api_token_resets(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    service = _service(nats_url, database_url)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with serving(service, js_client), collecting(js_client, symbol) as seen:
        bars = [bar(symbol, m, "100", "101", "0" if m == 2 else "99", "100") for m in range(8)]
        await _publish(service, [signal(symbol, 0, SignalState.BUY, plan("100", "95", "200", "20")), *bars])
        await _breaker_events(seen, 1)
        transport = httpx.ASGITransport(app=service.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://risk") as client:

            async def rejected() -> bool:
                return any(kind == "rejected" for kind, _ in seen)

            await wait_for(rejected, what="the entry refused")
            ready = (await client.get("/health/ready")).json()
            listed = (await client.get("/v1/risk/breakers")).json()
            gauge = f'tradebus_risk_breaker_open{{scope="{symbol}"}} 1.0'
            exposed = (await client.get("/metrics")).text
            anonymous = await client.post("/v1/risk/breaker/reset", params={"scope": symbol})
            reset = await client.post("/v1/risk/breaker/reset", params={"scope": symbol}, headers=headers)
            after = (await client.get("/health/ready")).json()
            issue = _stale_feed(symbol)
            await (await admin_publisher(service)).publish(subjects.quality(symbol), issue)
            events = await _breaker_events(seen, 3)
        decisions = await service.pool.fetch(
            "SELECT decision, reason FROM audit WHERE decision LIKE 'breaker%' AND symbol = $1 ORDER BY id", symbol
        )
    assert [e[:2] for e in events] == [("open", "data_quality"), ("closed", "manual_reset"), ("open", "data_quality")]
    assert events[0][2] == "2024-01-02T00:02:00Z"
    assert [b["data"]["reason"] for k, b in seen if k == "rejected"] == ["circuit_breaker"]
    assert ready["checks"]["breaker"]["ok"] is False and "non-positive low 0" in ready["checks"]["breaker"]["detail"]
    assert [(b["state"], b["trigger"]) for b in listed if b["scope"] == symbol] == [("open", "data_quality")]
    assert gauge in exposed
    assert (anonymous.status_code, reset.status_code, reset.json()) == (401, 200, {"closed": [symbol]})
    assert after["checks"]["breaker"]["ok"] is True
    assert [tuple(r) for r in decisions] == [
        ("breaker_open", "data_quality"),
        ("breaker_closed", "manual_reset"),
        ("breaker_open", "data_quality"),
    ]


def _stale_feed(symbol: str) -> QualityIssueEvent:
    now = datetime.now(tz=UTC)
    return QualityIssueEvent.build(
        event_id=f"quality:{symbol}:1m:stale:{datetime_to_ms(now)}",
        source="telemetry",
        trace_id=trace_id_for(symbol),
        mode=Mode.LIVE,
        data=QualityIssue(
            symbol=symbol,
            interval="1m",
            kind="stale",
            severity=Severity.CRITICAL,
            detail="no new live 1m bar for 612 s",
            bar_time=now - timedelta(seconds=672),
            detected_at=now,
        ),
    )


async def test_issues_of_symbols_risk_does_not_trade_are_dropped_not_dead_lettered(
    nats_url: str, database_url: str, js_client: Client, symbol: str
) -> None:
    settings = RiskSettings(nats_url=nats_url, database_url=database_url, risk_deliver_policy="new", symbols=(symbol,))
    service = build_service(settings)
    letters: list[bytes] = []

    async def on_letter(msg) -> None:  # type: ignore[no-untyped-def]
        letters.append(msg.data)

    letters_sub = await js_client.subscribe("dlq.risk", cb=on_letter)
    async with serving(service, js_client), collecting(js_client, symbol) as seen:
        publisher = await admin_publisher(service)
        await publisher.publish(subjects.quality("OTHERUSDT"), _stale_feed("OTHERUSDT"))
        await publisher.publish(subjects.quality(symbol), _stale_feed(symbol))
        events = await _breaker_events(seen, 1)  # after the other symbol's issue: one stream, in order
        await js_client.flush()
    await letters_sub.unsubscribe()
    assert [e[:2] for e in events] == [("open", "data_quality")] and letters == []


async def test_a_fast_equity_drop_trips_the_account_breaker(
    nats_url: str, database_url: str, js_client: Client, symbol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 units bought at 100; bar 6 closes at 95 (the stop 90 untouched): equity falls ~0.55 %
    from its high, over the 0.5 % limit; the other symbol's BUY at C = 10 is then refused, while
    the open long's SELL at C = 10 still exits."""
    monkeypatch.setenv("RISK_BREAKER_EQUITY_DROP_PCT", "0.005")
    other = f"{symbol[:-4]}XUSDT"
    events: list[Envelope] = []
    for m in range(12):
        events.append(bar(symbol, m, "100", "100", "94", "95") if m == 6 else bar(symbol, m, "100", "101", "99", "100"))
        events.append(bar(other, m, "100", "101", "99", "100"))
        if m % 5 == 0:
            events.append(
                signal(symbol, m, SignalState.BUY if m == 0 else SignalState.SELL, plan("100", "90", "130", "3"))
            )
            events.append(
                signal(other, m, SignalState.BUY if m == 5 else SignalState.NEUTRAL, plan("100", "90", "130", "3"))
            )
    service = _service(nats_url, database_url)
    async with (
        serving(service, js_client),
        collecting(js_client, other) as seen,
        collecting(js_client, ACCOUNT) as account,
        collecting(js_client, symbol) as held,
    ):
        await _publish(service, events)

        async def decided() -> bool:
            return any(kind == "rejected" for kind, _ in seen) and bool(account) and any(k == "trade" for k, _ in held)

        await wait_for(decided, timeout=20, what="the account breaker and the refused entry")
    rejection = next(body["data"] for kind, body in seen if kind == "rejected")
    assert rejection["reason"] == "circuit_breaker" and rejection["detail"].startswith(
        "ACCOUNT breaker open (equity_drop"
    )
    (trade,) = [body["data"] for kind, body in held if kind == "trade"]
    assert (trade["exit_reason"], trade["exit_time"]) == ("signal", "2024-01-02T00:10:00Z")
    trip = account[0][1]["data"]
    assert (trip["scope"], trip["state"], trip["trigger"], trip["at"]) == (
        ACCOUNT,
        "open",
        "equity_drop",
        "2024-01-02T00:06:00Z",
    )


async def test_the_asyncapi_document_lists_the_breaker_events_and_the_telemetry_inputs() -> None:
    service = build_service(RiskSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app()), base_url="http://risk") as client:
        document = (await client.get("/docs/asyncapi")).json()
    assert {"risk:exec.breaker.*", "risk:readiness", "risk:quality"} <= set(document["channels"])
    assert {"BreakerEvent", "Breaker", "ReadinessEvent", "QualityIssueEvent"} <= set(document["components"]["schemas"])
