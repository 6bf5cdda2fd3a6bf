"""Bringing back, in stream order, what a previous instance received but never acked.

JetStream redelivers an unacked message only after its ack_wait, and then AFTER the newer
messages a new instance has been sent meanwhile. Risk's event-time merge needs each stream in
order, and it holds bars unacked for long (see `desk`), so a killed instance leaves many behind.
Before the consumers start, a durable with unacked messages is recreated to start at its ack
floor + 1: everything not acked comes again, in order; what was acked past the floor comes too
and is recognised as done (applied bars by `bar_applied`, decided signals by their audit row).
This is only sound while risk runs as a single instance: a second one would take the first's
deliveries away.
"""

from __future__ import annotations

import dataclasses

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from tradebus.logging import get_logger

log = get_logger(__name__)


async def rewind_unacked(js: JetStreamContext, stream: str, durable: str) -> int | None:
    """Restart `durable` at its ack floor + 1 if it has unacked messages; returns that sequence."""
    try:
        info = await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        return None
    if not info.num_ack_pending:
        return None
    start = (info.ack_floor.stream_seq if info.ack_floor else 0) + 1
    config = dataclasses.replace(
        info.config,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start,
        opt_start_time=None,
    )
    await js.delete_consumer(stream, durable)
    await js.add_consumer(stream, config=config)
    log.warning("durable rewound to redeliver unacked messages in order", durable=durable, start_seq=start)
    return start
