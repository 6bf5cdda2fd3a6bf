"""The telemetry service on a real NATS and PostgreSQL: readiness from heartbeats, bar quality, feeds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
import nats.js.errors
import orjson
from helpers import bar, heartbeat
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from tradebus import subjects
from tradebus.events import BarEvent, Mode, QualityIssueEvent, ReadinessEvent, encode_bar_event
from tradebus.service import Service
from tradebus.testing import admin_publisher, durables_exist, running, wait_for
from tradebus_telemetry.app import build_service
from tradebus_telemetry.settings import TelemetrySettings

OTHERS = ("ingest", "aggregator", "signal", "risk", "rollup")
"""Telemetry's own heartbeat comes from the service shell itself."""

DURABLES = (("TELEMETRY", "telemetry-heartbeats"), ("BARS", "telemetry-bars-1m"))


@asynccontextmanager
async def telemetry(nc: Client, nats_url: str, database_url: str, **overrides: Any) -> AsyncIterator[Service]:
    """A telemetry service with fresh consumers (an earlier test's durables would resume) and fast clocks."""
    js = nc.jetstream()
    for stream, durable in DURABLES:
        with suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(stream, durable)
    fast: dict[str, Any] = {
        "heartbeat_interval_s": 0.2,
        "telemetry_heartbeat_timeout_s": 3.0,  # above the pull consumer's 1 s batching delay
        "telemetry_evaluate_interval_s": 0.1,
        "telemetry_bars_from": "new",
        "instance": f"test-{uuid.uuid4().hex[:8]}",  # heartbeat ids restart at 0 for every service in one process
        "symbols": ("BTCUSDT", "ETHUSDT", "TQBADUSDT", "TQREPLAYUSDT", "TQSTALEUSDT"),
        "admission_live_max_age_days": 36_500,  # live bars of 2023 (the live window is tested in tradebus)
    }
    settings = TelemetrySettings(nats_url=nats_url, database_url=database_url, **(fast | overrides))
    async with running(build_service(settings)) as service:
        await wait_for(durables_exist(js, DURABLES), what="telemetry's consumers created")
        yield service


async def collect(nc: Client, subject: str) -> list[Msg]:
    """Messages on `subject` from now on (a core subscription sees JetStream publishes too)."""
    seen: list[Msg] = []

    async def keep(msg: Msg) -> None:
        seen.append(msg)

    await nc.subscribe(subject, cb=keep)
    return seen


async def beat(service: Service, checks: dict[str, dict[str, bool]], alive: set[str]) -> None:
    """Heartbeats for the `alive` services every 0.2 s, each with its current checks."""
    n = 0
    run = uuid.uuid4().hex[:8]  # heartbeat ids must not repeat within JetStream's duplicate window
    while True:
        await (await admin_publisher(service)).publish_many(
            (subjects.heartbeat(s), heartbeat(s, n, checks=checks.get(s), instance=run)) for s in sorted(alive)
        )
        n += 1
        await asyncio.sleep(0.2)


def client(service: Service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app()), base_url="http://telemetry")


async def shows(http: httpx.AsyncClient, line: str) -> bool:
    return line in (await http.get("/metrics")).text


async def readiness_becomes(http: httpx.AsyncClient, status: str, failing: set[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal body
        body = (await http.get("/v1/readiness")).json()
        return body["status"] == status and {p["name"] for p in body["failure_points"] if not p["ok"]} == failing

    try:
        await wait_for(reached, timeout=10, what=f"readiness {status} failing {failing}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last: {body}") from None
    return body


async def test_readiness_follows_heartbeats_and_dead_letters(nc: Client, nats_url: str, database_url: str) -> None:
    published = await collect(nc, subjects.READINESS)
    async with telemetry(nc, nats_url, database_url) as service, client(service) as http:
        checks: dict[str, dict[str, bool]] = {}
        alive = set(OTHERS)
        beating = asyncio.create_task(beat(service, checks, alive))
        try:
            ready = await readiness_becomes(http, "READY", set())
            assert {p["name"] for p in ready["failure_points"]} >= {f"heartbeat:{s}" for s in (*OTHERS, "telemetry")}
            assert ready["checked_at"].endswith("Z")

            alive.discard("signal")
            blocked = await readiness_becomes(http, "BLOCKED", {"heartbeat:signal"})
            await wait_for(lambda: last_published(published, "BLOCKED"), what="BLOCKED published")
            (signal,) = [p for p in blocked["failure_points"] if p["name"] == "heartbeat:signal"]
            assert signal["severity"] == "critical" and "last heartbeat" in signal["detail"]
            own = await http.get("/health/ready")
            assert own.status_code == 200, "telemetry's own readiness does not depend on other services"

            alive.add("signal")
            checks["ingest"] = {"bus": True, "feed": False}
            await readiness_becomes(http, "DEGRADED", {"offline_data_source"})
            await wait_for(lambda: last_published(published, "DEGRADED"), what="DEGRADED published")

            checks["ingest"]["feed"] = True
            checks["risk"] = {"bus": True, "redis": False}
            redis = await readiness_becomes(http, "DEGRADED", {"redis"})  # never BLOCKED
            assert "risk" in next(p["detail"] for p in redis["failure_points"] if p["name"] == "redis")
            checks["risk"]["redis"] = True
            await readiness_becomes(http, "READY", set())
            await wait_for(lambda: last_published(published, "READY"), what="READY published")
            await nc.jetstream().publish(
                "dlq.signal", orjson.dumps({"service": "signal", "reason": "malformed"}), headers={"Nats-Msg-Id": "t1"}
            )
            degraded = await readiness_becomes(http, "DEGRADED", {"dlq"})
            (dlq,) = [p for p in degraded["failure_points"] if p["name"] == "dlq"]
            assert "malformed" in dlq["detail"]

            points = (await http.get("/v1/failure-points")).json()
            core = {
                "bus",
                "database",
                "feed_freshness",
                "offline_data_source",
                "risk_trading",
                "risk_breaker",
                "dlq",
                "redis",
            }
            assert {p["name"] for p in points} >= core | {f"heartbeat:{s}" for s in (*OTHERS, "telemetry")}
            assert all(p["detection"] and p["healing"] for p in points)  # feed_health:* too, once reported
            dlq_down = 'tradebus_telemetry_failure_point_ok{name="dlq"} 0.0'
            await wait_for(lambda: shows(http, dlq_down), what="dlq metric")
            assert 'tradebus_telemetry_readiness{status="DEGRADED"} 1.0' in (await http.get("/metrics")).text
        finally:
            beating.cancel()
        snapshots = await service.pool.fetch("SELECT status, failing FROM readiness_snapshots ORDER BY checked_at")

    statuses = [ReadinessEvent.model_validate_json(m.data).data.status.value for m in published]
    assert _squeeze(statuses)[-5:] == ["READY", "BLOCKED", "DEGRADED", "READY", "DEGRADED"], statuses
    assert ("BLOCKED", ["heartbeat:signal"]) in [(r["status"], r["failing"]) for r in snapshots]


async def test_bar_quality_issues_are_published_stored_and_reported(
    nc: Client, nats_url: str, database_url: str
) -> None:
    symbol = "TQBADUSDT"
    issues = await collect(nc, subjects.quality(symbol))
    letters = await collect(nc, "dlq.telemetry")
    async with telemetry(nc, nats_url, database_url) as service, client(service) as http:
        bars = [
            bar(0, symbol=symbol),
            bar(1, symbol=symbol, high="98", low="99"),  # high < low: dead-lettered at the door, never checked
            bar(4, symbol=symbol),  # minutes 1 (refused), 2 and 3 missing
            bar(5, symbol=symbol, close="120", high="121"),  # +19% from 100.5
        ]
        encoded = [encode_bar_event(b, source="ingest", mode=Mode.LIVE) for b in bars]  # the bad one unchecked
        await (await admin_publisher(service)).publish_encoded([(subjects.bars("1m", symbol), *e) for e in encoded])
        conflicting = BarEvent.of(bar(0, symbol=symbol, close="100.7"), source="ingest")
        await nc.jetstream().publish(
            subjects.bars("1m", symbol), conflicting.model_dump_json().encode(), headers={"Nats-Msg-Id": "t-dup"}
        )

        await wait_for(lambda: at_least(issues, 3), what="3 quality issues")
        await wait_for(lambda: at_least(letters, 1), what="the inconsistent bar dead-lettered")
        got = {e.event_id: e for e in (QualityIssueEvent.model_validate_json(m.data) for m in issues)}
        ms = [b.open_ms for b in bars]
        assert set(got) == {
            f"quality:{symbol}:1m:gap:{ms[2]}",
            f"quality:{symbol}:1m:price_jump:{ms[3]}",
            f"quality:{symbol}:1m:duplicate:{ms[0]}",
        }
        (letter,) = [orjson.loads(m.data) for m in letters]
        assert letter["reason"] == "malformed" and "low 99 > high 98" in letter["error"]
        assert got[f"quality:{symbol}:1m:gap:{ms[2]}"].data.detail.startswith("3 missing 1m bar(s)")

        report = (await http.get("/v1/data-quality")).json()
        assert report["last_hour"] == {"critical": 0, "warning": 3}
        assert {i["event_id"] for i in report["issues"]} == set(got)
        (feed,) = [f for f in report["feeds"] if f["symbol"] == symbol]
        assert (feed["mode"], feed["status"], feed["last_bar_time"]) == ("live", "ok", "2023-11-14T22:19:00Z")
        counted = f'tradebus_telemetry_quality_issues_total{{kind="gap",severity="warning",symbol="{symbol}"}}'
        assert counted in (await http.get("/metrics")).text
        asyncapi = (await http.get("/docs/asyncapi")).text
        assert all(s in asyncapi for s in ("telemetry.quality.*", "telemetry.readiness", "bars.1m.*"))


async def test_silent_live_feed_turns_stale_then_critical(nc: Client, nats_url: str, database_url: str) -> None:
    symbol, replayed = "TQSTALEUSDT", "TQREPLAYUSDT"
    issues = await collect(nc, subjects.quality(symbol))
    overrides = {"telemetry_feed_warning_s": 0.5, "telemetry_feed_critical_s": 1.5, "telemetry_heartbeat_timeout_s": 60}
    async with telemetry(nc, nats_url, database_url, **overrides) as service, client(service) as http:
        beating = asyncio.create_task(beat(service, {}, set(OTHERS)))
        try:
            await (await admin_publisher(service)).publish(
                subjects.bars("1m", replayed), BarEvent.of(bar(0, symbol=replayed), source="ingest", mode=Mode.REPLAY)
            )
            no_live = await readiness_becomes(http, "READY", set())
            (feed,) = [p for p in no_live["failure_points"] if p["name"] == "feed_freshness"]
            assert feed["detail"] == "no live feed yet", "a replayed bar is not a live feed"

            await (await admin_publisher(service)).publish(
                subjects.bars("1m", symbol), BarEvent.of(bar(0, symbol=symbol), source="ingest", mode=Mode.LIVE)
            )
            await readiness_becomes(http, "DEGRADED", {"feed_freshness"})
            await readiness_becomes(http, "BLOCKED", {"feed_freshness"})
        finally:
            beating.cancel()
        report = (await http.get("/v1/data-quality")).json()

    (stale,) = [QualityIssueEvent.model_validate_json(m.data) for m in issues]
    assert stale.event_id == f"quality:{symbol}:1m:stale:{bar(0).open_ms}"
    statuses = {f["symbol"]: f["status"] for f in report["feeds"]}
    assert (statuses[symbol], statuses[replayed]) == ("critical", "no_live_feed")


async def last_published(messages: list[Msg], status: str) -> bool:
    return bool(messages) and ReadinessEvent.model_validate_json(messages[-1].data).data.status.value == status


async def at_least(items: list[Msg], n: int) -> bool:
    return len(items) >= n


def _squeeze(values: list[str]) -> list[str]:
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


async def test_a_durables_backlog_is_exported_from_the_server_and_outlives_its_consumer(
    nc: Client, nats_url: str, database_url: str
) -> None:
    """A consumer nobody runs (its service crashed) still shows its pending messages and a still
    ack floor; its series go once the durable is deleted."""
    js = nc.jetstream()
    run = uuid.uuid4().hex[:6]
    symbol, durable = f"TQGONE{run.upper()}USDT", f"risk-gone-{run}"
    labels = {"stream": "BARS", "consumer": durable}
    try:
        async with telemetry(
            nc, nats_url, database_url, telemetry_jetstream_interval_s=0.1, symbols=("BTCUSDT", symbol)
        ) as service:
            await js.add_consumer("BARS", durable_name=durable, filter_subject=f"bars.1m.{symbol}")
            publisher = await admin_publisher(service)
            await publisher.publish_many(
                (f"bars.1m.{symbol}", BarEvent.of(bar(minute, symbol=symbol), source="ingest")) for minute in range(3)
            )

            async def pending(expected: float) -> bool:
                return REGISTRY.get_sample_value("tradebus_jetstream_consumer_pending_messages", labels) == expected

            await wait_for(lambda: pending(3.0), what="3 pending messages of a consumer nobody runs")
            assert REGISTRY.get_sample_value("tradebus_jetstream_consumer_ack_floor_sequence", labels) == 0.0
            assert (REGISTRY.get_sample_value("tradebus_jetstream_stream_messages", {"stream": "BARS"}) or 0) >= 3
            await js.delete_consumer("BARS", durable)

            async def dropped() -> bool:
                return REGISTRY.get_sample_value("tradebus_jetstream_consumer_pending_messages", labels) is None

            await wait_for(dropped, what="the deleted durable's series dropped")
    finally:
        with suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer("BARS", durable)


async def test_services_send_their_feed_health_and_telemetry_judges_it(
    nc: Client, nats_url: str, database_url: str
) -> None:
    """Telemetry's own heartbeat carries the calls it made to PostgreSQL and NATS; `/v1/feeds`
    serves them and the failure points judge each feed."""
    async with telemetry(nc, nats_url, database_url) as service, client(service) as http:

        async def counted() -> bool:
            feeds = (await http.get("/v1/feeds")).json()
            return all(feeds[f].get("telemetry", {}).get("calls", 0) > 0 for f in ("database", "bus"))

        await wait_for(counted, what="telemetry's database and bus calls in its heartbeat")
        feeds = (await http.get("/v1/feeds")).json()
        assert feeds["database"]["telemetry"]["p95_latency_s"] is not None
        points = {p["name"]: p for p in (await http.get("/v1/failure-points")).json()}
        assert points["feed_health:database"]["ok"] and points["feed_health:bus"]["ok"]
        assert "telemetry: p95" in points["feed_health:database"]["detail"]
