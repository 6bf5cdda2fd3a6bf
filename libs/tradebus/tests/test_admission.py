"""Admission at the door: the rules alone, then a running service that stores nothing it refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import nats
import orjson
import pytest
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from tradebus.admission import DLQ_REASONS, EARLIEST, Admission, Refusal
from tradebus.bus import BatchConsumer, Publisher
from tradebus.events import BarEvent, BarSource, Mode, encode_bar_event, make_bar
from tradebus.natsauth import ADMIN
from tradebus.service import Service
from tradebus.settings import Settings
from tradebus.testing import wait_for
from tradebus.timeframes import datetime_to_ms

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
ADMISSION = Admission(symbols=frozenset({"BTCUSDT"}), clock=lambda: NOW)


def _event_json(open_time: datetime = NOW - timedelta(minutes=1), *, mode: Mode = Mode.LIVE, symbol: str = "BTCUSDT",
                emitted_at: datetime = NOW) -> dict[str, Any]:  # fmt: skip
    bar = make_bar(
        symbol,
        "1m",
        datetime_to_ms(open_time),
        Decimal("100"),
        Decimal("101"),
        Decimal("99"),
        Decimal("100.5"),
        Decimal("2"),
        Decimal("201"),
        3,
        BarSource.BINANCE_WS,
    )
    payload, _ = encode_bar_event(bar, source="ingest", mode=mode, emitted_at=emitted_at)
    loaded: dict[str, Any] = orjson.loads(payload)
    return loaded


def _judge(message: dict[str, Any]) -> Refusal | None:
    return ADMISSION.refusal(BarEvent.model_validate(message), NOW)


def test_a_fresh_live_bar_and_a_replayed_old_one_are_admitted() -> None:
    assert _judge(_event_json()) is None
    assert _judge(_event_json(datetime(2017, 8, 17, tzinfo=UTC), mode=Mode.REPLAY)) is None


@pytest.mark.parametrize(
    ("message", "reason", "detail"),
    [
        (_event_json() | {"schema_version": 2}, "schema_version", "version 2"),
        (_event_json() | {"event_type": "signal.generated"}, "event_type", "'signal.generated'"),
        (_event_json(symbol="DOGEUSDT"), "symbol", "DOGEUSDT is not one of"),
        (_event_json(NOW - timedelta(days=46)), "event_time", "for a live event"),
        (_event_json(NOW + timedelta(minutes=3)), "event_time", "for a live event"),
        (_event_json(datetime(1970, 1, 1, tzinfo=UTC), mode=Mode.REPLAY), "event_time", "for a replay event"),
        (_event_json(EARLIEST - timedelta(days=1), mode=Mode.REPLAY), "event_time", "for a replay event"),
        (_event_json(datetime(9999, 1, 4, tzinfo=UTC), mode=Mode.REPLAY), "event_time", "9999"),
        (_event_json(emitted_at=datetime(2100, 1, 1, tzinfo=UTC)), "event_time", "emitted_at"),
    ],
)
def test_refusals(message: dict[str, Any], reason: str, detail: str) -> None:
    refusal = _judge(message)
    assert refusal is not None and refusal.reason == reason and detail in refusal.detail, refusal


def test_size_is_judged_before_decoding_and_an_unknown_version_is_named() -> None:
    assert ADMISSION.oversized(ADMISSION.max_bytes) is None
    assert ADMISSION.oversized(ADMISSION.max_bytes + 1) == Refusal(
        "too_large", f"{ADMISSION.max_bytes + 1} bytes, more than the limit of {ADMISSION.max_bytes}"
    )
    v2 = orjson.dumps(_event_json() | {"schema_version": 3, "data": {"renamed": True}})
    assert ADMISSION.undecodable(v2, BarEvent) == Refusal("schema_version", "version 3; this consumer knows up to 1")
    assert ADMISSION.undecodable(b"{not json", BarEvent) is None


def test_the_settings_configure_it() -> None:
    settings = Settings(
        symbols="ETHUSDT", bus_max_message_bytes=1000, admission_live_max_age_days=2, admission_max_skew_s=5
    )
    assert Admission.of(settings) == Admission(
        symbols=frozenset({"ETHUSDT"}), max_bytes=1000, live_max_age=timedelta(days=2), max_skew=timedelta(seconds=5)
    )


# ---------------------------------------------------------------------- on a running service
@pytest.fixture
async def demo(private_nats_url: str, database_url: str) -> AsyncIterator[Service]:
    settings = Settings(
        nats_url=private_nats_url,
        database_url=database_url,
        heartbeat_interval_s=0.2,
        symbols=("BTCUSDT",),
        nats_user=ADMIN,
    )  # a service outside the permission table logs in as admin
    service = Service("demo", settings, migrations="migrations_demo")

    @service.consumer(name="bars", stream="BARS", subject="bars.1m.*", model=BarEvent)
    async def on_bars(events: list[BarEvent]) -> None:
        for event in events:
            await service.pool.execute("INSERT INTO seen VALUES ($1, $2)", event.event_id, event.data.close)

    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def _dlq_count(service: str, reason: str) -> float:
    return REGISTRY.get_sample_value("tradebus_dlq_messages_total", {"service": service, "reason": reason}) or 0.0


def _live(**changes: Any) -> dict[str, Any]:
    return _event_json(datetime.now(tz=UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)) | changes


def _with_data(**changes: Any) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        message = _live()
        return message | {"data": message["data"] | changes}

    return build


BAD: dict[str, tuple[Callable[[], dict[str, Any]], str, str]] = {
    "1 MiB of extra fields": (lambda: _live(padding="x" * 200_000), "too_large", "200"),
    "an unknown schema version": (lambda: _live(schema_version=2), "schema_version", "version 2"),
    "another event's type": (lambda: _live(event_type="trade.closed"), "event_type", "trade.closed"),
    "a symbol nobody configured": (_with_data(symbol="DOGEUSDT"), "symbol", "DOGEUSDT"),
    "a live bar of 1970": (lambda: _event_json(datetime(1970, 1, 1, tzinfo=UTC)), "event_time", "1970"),
    "a replayed bar of year 9999": (
        lambda: _event_json(datetime(9999, 1, 4, tzinfo=UTC), mode=Mode.REPLAY),
        "event_time",
        "9999",
    ),
    "high below low": (_with_data(high="98", low="200"), "malformed", "low 200 > high 98"),
    "an open time off its interval": (_with_data(open_time="2026-01-01T00:00:30Z"), "malformed", "not aligned"),
}


@pytest.mark.parametrize("case", BAD)
async def test_a_refused_message_is_dead_lettered_counted_and_not_stored(
    demo: Service, private_nats_url: str, case: str
) -> None:
    build, reason, detail = BAD[case]
    message = build()
    nc = await nats.connect(private_nats_url)
    letters: list[dict[str, Any]] = []

    async def on_letter(msg: Msg) -> None:
        letters.append(orjson.loads(msg.data))

    await nc.jetstream().subscribe("dlq.demo", cb=on_letter, ordered_consumer=True)
    before = _dlq_count("demo", reason)
    await nc.jetstream().publish(
        f"bars.1m.{message['data']['symbol']}", orjson.dumps(message), headers={"Nats-Msg-Id": case}
    )
    good = _live()
    await nc.jetstream().publish("bars.1m.BTCUSDT", orjson.dumps(good), headers={"Nats-Msg-Id": "good"})

    async def good_one_stored() -> bool:
        return bool(await demo.pool.fetchval("SELECT count(*) FROM seen") >= 1)

    await wait_for(good_one_stored, what="the good bar after it stored")
    await wait_for(_async(lambda: bool(letters)), what="the dead letter")
    assert [r["event_id"] for r in await demo.pool.fetch("SELECT event_id FROM seen")] == [good["event_id"]]
    (letter,) = letters
    assert (letter["reason"], letter["consumer"]) == (reason, "bars")
    assert detail in letter["error"] or detail in str(letter.get("payload_bytes")), letter["error"]
    assert len(letter.get("payload", "")) <= 64 * 1024
    assert _dlq_count("demo", reason) == before + 1
    status, _ = await demo.readiness()
    assert status != "down"
    await nc.close()


def _async(predicate: Callable[[], bool]) -> Callable[[], Any]:
    async def check() -> bool:
        return predicate()

    return check


def test_every_dead_letter_reason_is_counted_from_zero() -> None:
    """A consumer's DLQ series exist at 0 from its start, so `increase()` counts the first letter
    (a series born at 1 shows 0 on every dashboard panel that uses it)."""
    BatchConsumer(
        service="zero", name="bars", model=BarEvent, handler=_no_handler, publisher=_no_publisher,
        stream="BARS", durable="zero-bars", subject="bars.1m.*", screen_reasons=("its_own",),
    )  # fmt: skip
    counted = {
        reason: REGISTRY.get_sample_value("tradebus_dlq_messages_total", {"service": "zero", "reason": reason})
        for reason in (*DLQ_REASONS, "its_own")
    }
    assert counted == dict.fromkeys(counted, 0.0)


async def _no_handler(events: list[BarEvent]) -> None:
    raise AssertionError("not consumed")


def _no_publisher() -> Publisher:
    raise AssertionError("not consumed")
