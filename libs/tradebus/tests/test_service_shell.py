"""The service shell on a real NATS and PostgreSQL: consume, ack, dead-letter, health."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import nats
import orjson
import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from tradebus import subjects
from tradebus.events import BarEvent, BarSource, Mode, make_bar
from tradebus.natsauth import ADMIN
from tradebus.service import CheckResult, Service
from tradebus.settings import Settings
from tradebus.testing import wait_for


def _bar_event(minute: int, close: str = "100.5") -> BarEvent:
    bar = make_bar(
        "BTCUSDT",
        "1m",
        1_700_000_040_000 + minute * 60_000,
        Decimal("100"),
        Decimal("101"),
        Decimal("99"),
        Decimal(close),
        Decimal("2.5"),
        Decimal("250"),
        7,
        BarSource.SYNTHETIC,
    )
    return BarEvent.of(bar, source="ingest", mode=Mode.REPLAY)


@pytest.fixture
async def demo(private_nats_url: str, database_url: str):
    settings = Settings(
        nats_url=private_nats_url, database_url=database_url, heartbeat_interval_s=0.2, nats_user=ADMIN
    )  # a service not in the permission table runs only as a user named for it
    service = Service("demo", settings, migrations="migrations_demo")
    seen: list[BarEvent] = []

    @service.consumer(name="bars", stream="BARS", subject="bars.1m.*", model=BarEvent)
    async def on_bars(events: list[BarEvent]) -> None:
        for event in events:
            if event.data.close == Decimal("100.66"):
                raise ValueError("poison")
            await service.pool.execute(
                "INSERT INTO seen VALUES ($1, $2) ON CONFLICT DO NOTHING", event.event_id, event.data.close
            )
            seen.append(event)

    @service.check("feed", critical=False)
    async def feed() -> CheckResult:
        return CheckResult(False, "no feed in this test")

    await service.start()
    try:
        yield service, seen
    finally:
        await service.stop()


async def test_consumes_dedupes_and_dead_letters(demo, private_nats_url: str) -> None:
    service, seen = demo
    nc = await nats.connect(private_nats_url)
    js = nc.jetstream()
    dlq = await js.subscribe("dlq.demo", durable="t-dlq")
    events = [_bar_event(i) for i in range(50)]
    await service.publisher.publish_many((subjects.bars("1m", "BTCUSDT"), e) for e in events)
    # the same events again: JetStream drops them by Nats-Msg-Id
    await service.publisher.publish_many((subjects.bars("1m", "BTCUSDT"), e) for e in events)
    await js.publish("bars.1m.BTCUSDT", b"{not json", headers={"Nats-Msg-Id": "junk-1"})
    await js.publish("bars.1m.BTCUSDT", b"\xff\xfe", headers={"Nats-Msg-Id": "junk-2"})
    poison = _bar_event(60, close="100.66")
    with capture_logs(processors=[merge_contextvars]) as logs:
        await service.publisher.publish("bars.1m.BTCUSDT", poison)
        await service.publisher.publish("bars.1m.BTCUSDT", _bar_event(61))

        async def stored() -> bool:
            return await service.pool.fetchval("SELECT count(*) FROM seen") == 51

        await wait_for(stored, what="51 bars stored")
        reasons = []
        for _ in range(3):
            msg = await dlq.next_msg(timeout=30)
            await msg.ack()
            reasons.append(orjson.loads(msg.data)["reason"])
    assert sorted(reasons) == ["handler_error", "malformed", "malformed"], reasons
    parked = [e for e in logs if e["event"] == "message dead-lettered" and e.get("reason") == "handler_error"]
    assert [e.get("trace_id") for e in parked] == [poison.trace_id]
    assert [e.event_id for e in seen[:50]] == [e.event_id for e in events]
    await nc.close()


async def test_health_endpoints(demo) -> None:
    service, _ = demo
    transport = httpx.ASGITransport(app=service.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
        metrics = await client.get("/metrics")
        asyncapi = await client.get("/docs/asyncapi")
    assert live.status_code == 200
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["ok"] and body["checks"]["bus"]["ok"]
    assert body["checks"]["feed"] == {"ok": False, "detail": "no feed in this test"}
    assert b"tradebus_bus_messages_out_total" in metrics.content
    assert "bars.1m.*" in asyncapi.text


async def test_a_consumer_stuck_with_a_backlog_fails_liveness_and_recovers(
    private_nats_url: str, database_url: str
) -> None:
    """A handler that hangs leaves a backlog on the server: after `consumer_stall_s` without
    progress /health/live answers 503 naming the consumer (the supervisor restarts on that);
    once it moves again, 200."""
    settings = Settings(
        nats_url=private_nats_url, database_url=database_url, nats_user=ADMIN, consumer_stall_s=1.0
    )  # fmt: skip
    service = Service("stuck", settings, migrations="migrations_demo")
    release = asyncio.Event()

    @service.consumer(name="bars", stream="BARS", subject="bars.1m.*", model=BarEvent, batch_size=1)
    async def on_bars(events: list[BarEvent]) -> None:
        await release.wait()

    await service.start()
    try:
        transport = httpx.ASGITransport(app=service.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/health/live")).status_code == 200
            await service.publisher.publish_many((subjects.bars("1m", "BTCUSDT"), _bar_event(i)) for i in range(3))

            async def live_is(code: int) -> bool:
                return (await client.get("/health/live")).status_code == code

            await wait_for(lambda: live_is(503), what="liveness failing for the stuck consumer")
            body = (await client.get("/health/live")).json()
            assert body["status"] == "stalled" and "bars" in body["detail"]
            release.set()
            await wait_for(lambda: live_is(200), what="liveness back once the consumer moved")
    finally:
        release.set()
        await service.stop()
