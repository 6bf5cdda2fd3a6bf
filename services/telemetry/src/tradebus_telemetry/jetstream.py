"""The bus as the server sees it: every stream's size and every durable consumer's state, read
from JetStream's API and exported as gauges.

A service's own lag gauge dies with it: Prometheus drops its series with the scrape, so the
backlog of a crashed or hung consumer showed nowhere. These come from the server through
telemetry, so a dead consumer's pending messages and its stalled ack floor stay visible (the
ConsumerNotProgressing and ConsumerLagHigh alerts read them). A durable that is deleted loses its
series at the next look; ephemeral consumers (a `tradebus tail`, telemetry's own dead-letter
watch) are left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from nats.js.api import ConsumerInfo
from nats.js.client import JetStreamContext
from prometheus_client import Gauge

STREAM_MESSAGES: Final = Gauge("tradebus_jetstream_stream_messages", "Messages stored in the stream.", ["stream"])
STREAM_BYTES: Final = Gauge("tradebus_jetstream_stream_bytes", "Bytes stored in the stream.", ["stream"])
STREAM_LAST_SEQUENCE: Final = Gauge(
    "tradebus_jetstream_stream_last_sequence", "Sequence of the stream's newest message.", ["stream"]
)
_CONSUMER_LABELS: Final = ["stream", "consumer"]
PENDING: Final = Gauge(
    "tradebus_jetstream_consumer_pending_messages",
    "Messages in the stream the durable has not been delivered yet (its backlog, seen by the server).",
    _CONSUMER_LABELS,
)
ACK_PENDING: Final = Gauge(
    "tradebus_jetstream_consumer_ack_pending_messages", "Delivered to the durable, not acked yet.", _CONSUMER_LABELS
)
REDELIVERED: Final = Gauge(
    "tradebus_jetstream_consumer_redelivered_messages", "Messages delivered to it more than once.", _CONSUMER_LABELS
)
ACK_FLOOR: Final = Gauge(
    "tradebus_jetstream_consumer_ack_floor_sequence",
    "Stream sequence up to which the durable has acked everything (it moves while the consumer progresses).",
    _CONSUMER_LABELS,
)
LAST_ACTIVE: Final = Gauge(
    "tradebus_jetstream_consumer_last_active_timestamp_seconds",
    "When the server last delivered to the durable (epoch s; 0 before its first delivery).",
    _CONSUMER_LABELS,
)
CONSUMER_GAUGES: Final = (PENDING, ACK_PENDING, REDELIVERED, ACK_FLOOR, LAST_ACTIVE)


class JetStreamObserver:
    """Reads the server's view and sets the gauges; keeps the label sets it set, to drop the
    series of a durable or stream that is gone."""

    def __init__(self) -> None:
        self._streams: set[str] = set()
        self._durables: set[tuple[str, str]] = set()

    async def observe(self, js: JetStreamContext) -> None:
        streams: set[str] = set()
        durables: set[tuple[str, str]] = set()
        for info in await js.streams_info():
            name = info.config.name or ""
            streams.add(name)
            STREAM_MESSAGES.labels(name).set(info.state.messages)
            STREAM_BYTES.labels(name).set(info.state.bytes)
            STREAM_LAST_SEQUENCE.labels(name).set(info.state.last_seq)
            for consumer in await js.consumers_info(name):
                if consumer.config.durable_name:
                    durables.add((name, consumer.name))
                    _set_consumer(name, consumer)
        for gone in self._streams - streams:
            for gauge in (STREAM_MESSAGES, STREAM_BYTES, STREAM_LAST_SEQUENCE):
                gauge.remove(gone)
        for stream, durable in self._durables - durables:
            for gauge in CONSUMER_GAUGES:
                gauge.remove(stream, durable)
        self._streams, self._durables = streams, durables


def _set_consumer(stream: str, info: ConsumerInfo) -> None:
    labels = (stream, info.name)
    PENDING.labels(*labels).set(info.num_pending or 0)
    ACK_PENDING.labels(*labels).set(info.num_ack_pending or 0)
    REDELIVERED.labels(*labels).set(info.num_redelivered or 0)
    ACK_FLOOR.labels(*labels).set(info.ack_floor.stream_seq if info.ack_floor else 0)
    LAST_ACTIVE.labels(*labels).set(_epoch(info.delivered.last_active if info.delivered else None))


def _epoch(value: datetime | None) -> float:
    if value is None:
        return 0.0
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
