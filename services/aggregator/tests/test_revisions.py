"""Only a higher revision changes a stored 1m bar: a bar re-sent under its id with other prices
(and a fresh message id, so JetStream does not drop it) is dead-lettered and changes nothing."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from tradebus import subjects
from tradebus.bus import encode
from tradebus.events import BarEvent, Mode
from tradebus.testing import admin_publisher, running, wait_for
from tradebus.timeframes import MINUTE_MS, datetime_to_ms

sys.path.insert(0, str(Path(__file__).parent))
from aggregator_testkit import minute

from tradebus_aggregator.app import build_service
from tradebus_aggregator.settings import AggregatorSettings

SYMBOL = "REVUSDT"
HOUR = datetime_to_ms(datetime(2024, 3, 5, 10, tzinfo=UTC))

STORED = "SELECT interval, open_time, open, high, low, close, volume, revision FROM bars ORDER BY interval, open_time"


def _event(i: int, close: str = "100", *, revision: int = 0, **prices: str) -> BarEvent:
    bar = minute(HOUR + i * MINUTE_MS, close, symbol=SYMBOL, revision=revision, **prices)  # type: ignore[arg-type]
    return BarEvent.of(bar, source="ingest", mode=Mode.REPLAY)


def _conflicts() -> float:
    labels = {"service": "aggregator", "reason": "revision_conflict"}
    return REGISTRY.get_sample_value("tradebus_dlq_messages_total", labels) or 0.0


async def test_a_rewritten_bar_is_dead_lettered_and_a_higher_revision_applies(nats_url: str, database_url: str) -> None:
    settings = AggregatorSettings(nats_url=nats_url, database_url=database_url, symbols=(SYMBOL,))
    nc = await nats.connect(nats_url)
    letters: list[dict[str, Any]] = []
    published: list[BarEvent] = []

    async def on_letter(msg: Msg) -> None:
        letters.append(orjson.loads(msg.data))

    async def on_bar(msg: Msg) -> None:
        published.append(BarEvent.model_validate_json(msg.data))

    async with running(build_service(settings)) as service:
        js = nc.jetstream()
        await js.subscribe("dlq.aggregator", cb=on_letter, ordered_consumer=True, deliver_policy="new")
        await js.subscribe(f"bars.5m.{SYMBOL}", cb=on_bar, ordered_consumer=True)
        first = [_event(i) for i in range(5)]
        await (await admin_publisher(service)).publish_many((subjects.bars("1m", SYMBOL), e) for e in first)

        async def bucket_published() -> bool:
            return len(published) == 1

        await wait_for(bucket_published, what="the 5m bar")

        async def stored_six() -> bool:
            return bool(await service.pool.fetchval("SELECT count(*) FROM bars") == 6)

        await wait_for(stored_six, what="five 1m bars and the 5m bar stored")
        before = await service.pool.fetch(STORED)
        counted = _conflicts()

        forged = _event(2, "200", high="300", low="150")  # same event id, same revision, other prices
        assert forged.event_id == first[2].event_id
        await (await admin_publisher(service)).publish_raw(
            subjects.bars("1m", SYMBOL), encode(forged), "a-fresh-msg-id"
        )

        async def dead_lettered() -> bool:
            return bool(letters)

        await wait_for(dead_lettered, what="the rewrite dead-lettered")
        (letter,) = letters
        assert letter["reason"] == "revision_conflict" and forged.event_id in letter["error"]
        assert _conflicts() == counted + 1
        assert await service.pool.fetch(STORED) == before
        assert len(published) == 1  # no higher bar revised
        assert (await service.readiness())[0] != "down"

        corrected = _event(2, "90", revision=1)  # ingest's correction path: a higher revision
        await (await admin_publisher(service)).publish(subjects.bars("1m", SYMBOL), corrected)

        async def revised() -> bool:
            return len(published) == 2

        await wait_for(revised, what="the 5m bar revised")
        assert (published[1].data.revision, published[1].data.low) == (1, 90)
        low = await service.pool.fetchval(
            "SELECT low FROM bars WHERE interval = '1m' AND open_time = $1", corrected.data.open_time
        )
        assert low == 90 and len(letters) == 1
    await nc.close()


async def test_an_invalid_stored_bar_answers_409_not_500(nats_url: str, database_url: str) -> None:
    """Nothing valid is stored invalid now; a row left by an older version is named, not a 500."""
    settings = AggregatorSettings(nats_url=nats_url, database_url=database_url, symbols=(SYMBOL,))
    async with running(build_service(settings)) as service:
        await service.pool.execute(
            "INSERT INTO bars (symbol, interval, open_time, open, high, low, close, volume, quote_volume, trades,"
            " complete, revision, source) VALUES ($1, '1w', $2, 100, 98, 200, 150, 1, 1, 1, true, 0, 'aggregated')",
            SYMBOL,
            datetime(2024, 3, 4, tzinfo=UTC),
        )
        transport = httpx.ASGITransport(app=service.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://aggregator") as client:
            answer = await client.get("/v1/bars", params={"symbol": SYMBOL, "interval": "1w"})
    assert answer.status_code == 409, answer.text
    assert f"a stored 1w bar of {SYMBOL} in the range is invalid" in answer.json()["detail"]
