"""The readiness gate: its rule, then the risk service on real NATS and PostgreSQL reading
telemetry's `telemetry.readiness` reports: while BLOCKED no live entry (the failing points in
the reason), live exits still run, replays are not gated; DEGRADED trades, flagged in the audit."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client

from tradebus import subjects
from tradebus.events import FailurePoint, Mode, Readiness, ReadinessEvent, ReadinessStatus, Severity, SignalState
from tradebus.service import Service
from tradebus.testing import admin_publisher, wait_for
from tradebus.timeframes import MINUTE_MS, datetime_to_ms
from tradebus_risk.gate import ReadinessGate
from tradebus_risk.rules import Reason, Verdict

sys.path.insert(0, str(Path(__file__).parent))
from risk_scenario import bar, plan, signal
from test_service import _publish, _service, _until_count, collecting, serving

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
ACCEPTED = Verdict("accepted", Reason.ENTRY, "sized")
INGEST_DOWN = FailurePoint(
    name="heartbeat:ingest", ok=False, severity=Severity.CRITICAL, detail="no heartbeat from ingest yet"
)
DLQ = FailurePoint(name="dlq", ok=False, severity=Severity.WARNING, detail="1 dead letter(s)")


def _readiness(status: ReadinessStatus, *points: FailurePoint, at: datetime = NOW) -> Readiness:
    return Readiness(status=status, failure_points=list(points), checked_at=at)


def test_the_gate_rule() -> None:
    clock = [NOW]
    gate = ReadinessGate("trade", 180.0, clock=lambda: clock[0])
    assert gate(ACCEPTED) == ACCEPTED  # no report: trade
    gate.observe(_readiness(ReadinessStatus.BLOCKED, DLQ, INGEST_DOWN))
    blocked = gate(ACCEPTED)
    assert blocked.reason is Reason.READINESS_BLOCKED
    assert blocked.detail == (
        "readiness BLOCKED at 2026-01-05T12:00:00.000Z: heartbeat:ingest (no heartbeat from ingest yet); "
        "dlq (1 dead letter(s))"
    )
    gate.observe(_readiness(ReadinessStatus.READY, at=NOW - timedelta(seconds=5)))  # older: ignored
    assert gate(ACCEPTED).reason is Reason.READINESS_BLOCKED
    gate.observe(_readiness(ReadinessStatus.DEGRADED, DLQ, at=NOW + timedelta(seconds=5)))
    flagged = gate(ACCEPTED)
    assert flagged.reason is Reason.ENTRY and flagged.detail.endswith(
        "traded while readiness DEGRADED at 2026-01-05T12:00:05.000Z: dlq (1 dead letter(s))"
    )
    strict = ReadinessGate("block", 180.0, clock=lambda: NOW)
    strict.observe(_readiness(ReadinessStatus.DEGRADED, DLQ))
    assert strict(ACCEPTED).reason is Reason.READINESS_DEGRADED and strict.blocks_entries() is not None
    clock[0] = NOW + timedelta(seconds=200)  # telemetry silent: the report is no longer believed
    stale = gate(ACCEPTED)
    assert (
        stale.reason is Reason.ENTRY
        and "readiness unknown: last readiness report (DEGRADED) is 195 s old" in stale.detail
    )
    assert gate.blocks_entries() is None


async def _report(service: Service, symbol: str, status: ReadinessStatus, *points: FailurePoint) -> None:
    now = datetime.now(tz=UTC)
    event = ReadinessEvent.build(
        event_id=f"readiness:{symbol}:{datetime_to_ms(now)}",
        source="telemetry",
        trace_id=f"readiness:{symbol}",
        data=_readiness(status, *points, at=now),
    )
    await (await admin_publisher(service)).publish(subjects.READINESS, event)
    transport = httpx.ASGITransport(app=service.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://risk") as client:

        async def seen() -> bool:
            check = (await client.get("/health/ready")).json()["checks"]["readiness_gate"]
            return bool(check["ok"] is (status is not ReadinessStatus.BLOCKED))

        await wait_for(seen, what=f"readiness {status} reached the gate")


async def test_blocked_readiness_stops_live_entries_only(
    nats_url: str, database_url: str, js_client: Client, symbol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RISK_STALE_AFTER_S", "3600")  # live signals of the last 20 minutes
    monkeypatch.setenv("RISK_WATERMARK_HOLD_S", "1")  # the replayed symbol does not hold the live one back long
    now_ms = datetime_to_ms(datetime.now(tz=UTC))
    t0 = now_ms - now_ms % (5 * MINUTE_MS) - 20 * MINUTE_MS
    replayed = f"{symbol[:-4]}XUSDT"
    buy = plan("100", "95", "200", "20")

    def live_bars(first: int, last: int) -> list:
        return [bar(symbol, m, "100", "101", "99", "100", mode=Mode.LIVE, t0_ms=t0) for m in range(first, last + 1)]

    def live(minute: int, state: SignalState):  # type: ignore[no-untyped-def]
        return signal(symbol, minute, state, buy, mode=Mode.LIVE, t0_ms=t0)

    service = _service(nats_url, database_url)
    async with (
        serving(service, js_client),
        collecting(js_client, symbol) as seen,
        collecting(js_client, replayed) as replay_seen,
    ):
        await _report(service, symbol, ReadinessStatus.BLOCKED, INGEST_DOWN)
        replay = [
            signal(replayed, 0, SignalState.BUY, buy),
            *(bar(replayed, m, "100", "101", "99", "100") for m in range(7)),
        ]
        await _publish(service, replay)
        await _until_count(replay_seen, 3)  # a replay is not gated: order, fill, position
        await _report(service, symbol, ReadinessStatus.READY)
        await _publish(service, [*live_bars(0, 4), live(0, SignalState.BUY)])
        await _until_count(seen, 1)
        await _publish(service, live_bars(5, 9))  # the entry fills at bar 5
        await _until_count(seen, 3)
        await _report(service, symbol, ReadinessStatus.BLOCKED, INGEST_DOWN)
        await _publish(service, [live(5, SignalState.SELL), *live_bars(10, 14)])  # the exit still runs
        await _until_count(seen, 7)
        await _publish(service, [live(10, SignalState.BUY), *live_bars(15, 19)])
        await _until_count(seen, 8)
        await _report(service, symbol, ReadinessStatus.DEGRADED, DLQ)
        await _publish(service, [live(15, SignalState.BUY)])
        await _until_count(seen, 9)
        audit = await service.pool.fetch(
            "SELECT reason, detail FROM audit WHERE symbol = $1 ORDER BY event_time", symbol
        )
    kinds = [kind for kind, _ in seen]
    assert kinds == ["order", "fill", "position", "order", "fill", "position", "trade", "rejected", "order"]
    assert [kind for kind, _ in replay_seen][:3] == ["order", "fill", "position"]
    rejection = seen[7][1]["data"]
    assert rejection["reason"] == "readiness_blocked"
    assert (
        "readiness BLOCKED" in rejection["detail"]
        and "heartbeat:ingest (no heartbeat from ingest yet)" in rejection["detail"]
    )
    assert [r["reason"] for r in audit] == ["entry", "exit_signal", "readiness_blocked", "entry"]
    assert "traded while readiness DEGRADED" in audit[3]["detail"] and "dlq (1 dead letter(s))" in audit[3]["detail"]
    assert "readiness" not in audit[0]["detail"]
