"""JetStream plumbing every service shares: streams, pipelined publishing, batch consuming, DLQ.

Hot paths publish with `publish_async` (acks awaited together, not one round trip per event)
and consume through a continuous pull loop in chunks of whatever has arrived, handled in stream
order (a consumer off the latency path may linger instead: pull what is there, wait, pull
again; or linger only while it catches up on replayed history). Durables ack all: one ack of a
chunk's last delivery settles the chunk once every message in it is done (half the server's work
per message of an ack each); a consumer that holds deliveries back acks each one explicitly
instead.

Nothing delivered is lost, whatever stops: a consumer starts by rewinding its durable to the ack
floor when anything was delivered and not acked (a crash, a stop with deliveries queued), so it
comes again in stream order before anything newer; while it runs, it checks that deliveries come
without a gap (a reconnect or a nats-server restart drops those in flight) and rewinds the same
way when they do not, so an ack-all never covers a message that was not handled. What comes
again and was handled already in this run is skipped; what a previous process handled but never
acked is handled again, and services recognise it (idempotent writes, deterministic event ids).

A message that cannot be decoded, or that keeps failing its handler, is parked on
`dlq.<service>` with the reason and counted, so a consumer never stops on a message. Failures
of the database or the bus itself are not the message's fault: those are retried in place, never
dead-lettered, and nothing later overtakes. A permanent refusal (a subject the server will not
take, a payload too large, no stream) is the message's fault: it is dead-lettered after
`MAX_ATTEMPTS`, never retried forever.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import errno
import itertools
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar

import asyncpg
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, DiscardPolicy, StorageType, StreamConfig
from pydantic import ValidationError

from tradebus import metrics, subjects
from tradebus.admission import DLQ_REASONS, Admission, Refusal, Screen
from tradebus.events import Envelope
from tradebus.feedhealth import feeds
from tradebus.logging import get_logger, trace_context

log = get_logger(__name__)

E = TypeVar("E", bound=Envelope)
BatchHandler = Callable[[list[E]], Awaitable[Collection[str] | None]]
"""Handles a batch; may return the event ids it holds back: those stay unacked until `release`."""

MAX_ATTEMPTS: Final = 3
"""Times a message may fail its handler (not the infrastructure) before it is dead-lettered."""

ACK_WAIT_S: Final = 60.0
HELD_ACK_WAIT_S: Final = 600.0
"""A consumer that holds deliveries back may keep them for long (risk's bars wait for the signal
stream); the server would send each again every `ack_wait`, to be decoded and skipped."""

TRANSIENT_ERRORS: Final[tuple[type[BaseException], ...]] = (
    ConnectionError,
    TimeoutError,  # asyncio's and nats-py's timeouts are TimeoutError too
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
)
"""Failures of the infrastructure that heal (a connection lost, a timeout, the database or JetStream
unavailable for now): retried in place forever, never dead-lettered. Anything else — a refused
publish, a bad subject, a payload too large, a bug — is the message's, see `is_transient`."""


UNREACHABLE_ERRNOS: Final = frozenset({errno.ENOENT, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ETIMEDOUT})
"""Connect failures that are not `ConnectionError`s: a Unix socket not there while PostgreSQL
restarts (ENOENT, from a connect, never a file: it has no filename), a network or host not
reachable for now."""


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is an outage to wait out rather than a failure of the message."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if isinstance(exc, socket.gaierror):  # a name that does not resolve for now (DNS)
        return True
    if type(exc) in (OSError, FileNotFoundError) and exc.errno in UNREACHABLE_ERRNOS:  # type: ignore[attr-defined]
        return getattr(exc, "filename", None) is None
    # asyncpg reports a connection lost mid-query, or a pool closing under it, as InterfaceError
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


class PublishRefused(nats.errors.Error):
    """The server will not take a publish (permissions, payload, no stream): retrying cannot help."""


async def ensure_streams(js: JetStreamContext, specs: Iterable[subjects.StreamSpec] = subjects.STREAMS) -> None:
    """Create or update every stream so that its config matches the contract (idempotent)."""
    for spec in specs:
        config = StreamConfig(
            name=spec.name,
            subjects=list(spec.subjects),
            description=spec.description,
            max_age=spec.max_age_s,
            duplicate_window=subjects.DUPLICATE_WINDOW_S,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)


def server_version(nc: NatsClient) -> tuple[int, int]:
    """(major, minor) of the NATS server `nc` is connected to."""
    version = nc.connected_server_version
    return version.major, version.minor


def encode(event: Envelope) -> bytes:
    return event.model_dump_json().encode()


PUBLISH_ACK_TIMEOUT_S: Final = 10.0
"""How long a published batch may wait for its acks (a reconnect loses those in flight): then it
fails as an outage, is retried in place, and the same `Nats-Msg-Id`s are dropped as duplicates."""


@dataclasses.dataclass(slots=True)
class _Acks:
    """The acks one published batch still waits for, and the first error among them."""

    left: int
    done: asyncio.Future[None]
    error: nats.errors.Error | None = None


class Publisher:
    """Publishes events to JetStream with `Nats-Msg-Id` set, pipelined: a batch's messages are all
    written before its acks are awaited, and every ack comes back on one wildcard reply
    subscription, counted per batch (nats-py's `publish_async` spends ~12 µs more a message on a
    future, a NUID, a semaphore and a JSON parse of each ack)."""

    def __init__(self, nc: NatsClient, service: str, *, ack_timeout_s: float = PUBLISH_ACK_TIMEOUT_S) -> None:
        self._nc = nc
        self._service = service
        self._feeds = feeds(service)
        self._ack_timeout_s = ack_timeout_s
        self._inbox: str | None = None
        self._waiting: dict[str, _Acks] = {}
        self._batches = itertools.count()

    async def publish(self, subject: str, event: Envelope) -> None:
        await self.publish_many(((subject, event),))

    async def publish_many(self, items: Iterable[tuple[str, Envelope]]) -> None:
        """Publish all `items` and wait for every ack; raises if any publish failed."""
        await self.publish_encoded([(subject, encode(event), event.msg_id) for subject, event in items])

    async def publish_raw(self, subject: str, payload: bytes, msg_id: str) -> None:
        await self.publish_encoded([(subject, payload, msg_id)])

    async def publish_encoded(self, messages: list[tuple[str, bytes, str]]) -> None:
        """Publish encoded `(subject, payload, msg_id)` messages, in order, and wait for every ack
        (one call of the `bus` feed)."""
        if not messages:
            return
        with self._feeds.call("bus"):
            await self._publish_encoded(messages)

    async def _publish_encoded(self, messages: list[tuple[str, bytes, str]]) -> None:
        inbox = self._inbox or await self._subscribe()
        batch = str(next(self._batches))
        acks = _Acks(len(messages), asyncio.get_running_loop().create_future())
        self._waiting[batch] = acks  # counted before the first write: acks may come while writing
        reply = f"{inbox}.{batch}"
        published: Counter[str] = Counter()
        try:
            for subject, payload, msg_id in messages:
                await self._nc.publish(subject, payload, reply=reply, headers={"Nats-Msg-Id": msg_id})
                published[subject] += 1
            try:
                await asyncio.wait_for(acks.done, self._ack_timeout_s)
            except TimeoutError:
                refused = _permission_refused(self._nc, published)
                if refused:
                    raise PublishRefused(refused) from None
                raise nats.errors.TimeoutError from None
        finally:
            del self._waiting[batch]
            for subject, count in published.items():
                metrics.BUS_OUT.labels(self._service, subject).inc(count)
        if acks.error is not None:
            raise acks.error

    async def _subscribe(self) -> str:
        inbox = self._nc.new_inbox()
        subscription = await self._nc.subscribe(f"{inbox}.*", cb=self._on_ack)
        if self._inbox is None:
            self._inbox = inbox
        else:  # another task subscribed meanwhile
            await subscription.unsubscribe()
        return self._inbox

    async def _on_ack(self, msg: Msg) -> None:
        acks = self._waiting.get(msg.subject.rpartition(".")[2])
        if acks is None:
            return  # the batch timed out already
        if acks.error is None:
            acks.error = _ack_error(msg)
        acks.left -= 1
        if acks.left == 0 and not acks.done.done():
            acks.done.set_result(None)


JS_TEMPORARILY_UNAVAILABLE: Final = 10008
"""JetStream's error code for "JetStream system temporarily unavailable" (other 503s, such as a
stream's limits, are refusals)."""


def _ack_error(msg: Msg) -> nats.errors.Error | None:
    """What a JetStream publish ack reports as failed, or None for a stored (or duplicate) message."""
    if not msg.data:  # a status alone: no stream takes the subject (503 no responders), or another refusal
        headers = msg.headers or {}
        status = headers.get("Status", "")
        if status == "503":
            return PublishRefused("no stream takes the subject (no responders)")
        return PublishRefused(f"publish refused: status {status} {headers.get('Description', '')}".strip())
    error = orjson.loads(msg.data).get("error") if b'"error"' in msg.data else None
    if not error:
        return None
    if error.get("err_code") == JS_TEMPORARILY_UNAVAILABLE:  # a restart, an election: it heals
        return nats.js.errors.ServiceUnavailableError(
            code=503, err_code=error.get("err_code"), description=error.get("description")
        )
    return PublishRefused(f"publish refused: {error.get('code')} {error.get('description')}")


def _permission_refused(nc: NatsClient, subjects_published: Collection[str]) -> str | None:
    """The server's permissions violation for one of `subjects_published`, if that is why no ack
    came (the server drops such a publish and tells only the connection's error callback)."""
    error = str(nc.last_error or "")
    said = error.lower()  # nats-py lower-cases the server's error, subject included
    if "permissions violation" not in said:
        return None
    return error if any(subject.lower() in said for subject in subjects_published) else None


class BatchConsumer(Generic[E]):
    """Decodes a fetched batch, hands the good events to the handler, acks, dead-letters the rest."""

    def __init__(
        self,
        *,
        service: str,
        name: str,
        model: type[E],
        handler: BatchHandler[E],
        publisher: Callable[[], Publisher],
        stream: str,
        durable: str,
        subject: str,
        filter_subjects: Sequence[str] = (),
        batch_size: int = 500,
        deliver_policy: DeliverPolicy = DeliverPolicy.ALL,
        ack_wait_s: float | None = None,
        accept: Callable[[str], bool] | None = None,
        holds: bool = False,
        linger_s: float = 0.0,
        linger_while: Callable[[Sequence[E]], bool] | None = None,
        admission: Admission | None = None,
        screen: Screen[E] | None = None,
        screen_reasons: Sequence[str] = (),
    ) -> None:
        self.service = service
        self.name = name
        self.model = model
        self.handler = handler
        self.stream = stream
        self.durable = durable
        self.subject = subject
        self.filter_subjects = tuple(filter_subjects)
        self.batch_size = batch_size
        self.linger_s = linger_s
        """When set, messages are pulled in gathered chunks: take what is there, then wait this long
        before asking again (at once when the chunk was full). For a consumer off the latency path
        (telemetry): one wake-up per linger instead of one per message, for it and the server."""
        self._linger_while = linger_while
        """When set, lingering only after a chunk it holds for (risk's signals while they are replayed:
        bigger chunks, fewer transactions); after any other chunk, messages come as they arrive."""
        self._lingering = bool(linger_s) and linger_while is None
        self._config = ConsumerConfig(
            durable_name=durable,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT if holds else AckPolicy.ALL,
            ack_wait=ack_wait_s or (HELD_ACK_WAIT_S if holds else ACK_WAIT_S),
            max_ack_pending=batch_size * 20,
            deliver_policy=deliver_policy,
        )
        self._publisher = publisher
        self._accept = accept
        self._admission = admission
        """Size, schema version, symbol and time checks at the door (`tradebus.admission`)."""
        self._screen = screen
        """The service's own admission of a decoded chunk, against its state."""
        for reason in (*DLQ_REASONS, *screen_reasons):  # at 0 from the start: increase() counts the first
            metrics.DLQ_MESSAGES.labels(service, reason)
        self.last_batch_at: datetime | None = None
        self._stopping = asyncio.Event()
        self._queue: asyncio.Queue[Msg | None] = asyncio.Queue()  # None wakes the loop to stop
        self._holds = holds
        self._ack_all = not holds
        """Whether one ack of a chunk's last delivery settles the whole chunk (the durable's policy)."""
        self._deliveries = _Deliveries()
        self.gate: asyncio.Event | None = None
        """When set by the service, chunks are handled only while it is set (the instance lease)."""
        self._held: dict[str, Msg] = {}
        """Deliveries the handler holds back (event id → newest delivery), acked by `release`."""

    async def ensure(self, js: JetStreamContext, server: tuple[int, int] = (0, 0)) -> None:
        """Create the durable, or adopt the existing one as it is (its start position and ack
        policy are its own: a rewound durable, one made by an older version), narrowing only
        its filter when ours changed; an existing one with deliveries never acked (a previous
        process crashed or stopped holding them) is rewound first, so they come again in order.

        `filter_subjects` narrow the durable on servers that support several filters (2.10+), so
        the server never sends what the handler drops; older servers get `subject` and `accept`
        drops the rest on arrival, in the same stream order.
        """
        narrowed = bool(self.filter_subjects) and server >= (2, 10)
        wanted = list(self.filter_subjects)

        def narrow(config: ConsumerConfig) -> ConsumerConfig:
            return dataclasses.replace(config, filter_subject=None, filter_subjects=wanted) if narrowed else config

        try:
            info = await js.consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            info = await js.add_consumer(self.stream, config=narrow(self._config))
        else:
            if narrowed and (info.config.filter_subjects or []) != wanted:
                info = await js.add_consumer(self.stream, config=narrow(info.config))
            if info.num_ack_pending:
                info = await self._rewind(js, info)
        self._ack_all = info.config.ack_policy == AckPolicy.ALL
        if self._holds and self._ack_all:
            raise RuntimeError(f"durable {self.durable} acks all; delete it so that it can hold deliveries back")
        self._deliveries.expected = _next_delivery(info)

    async def _rewind(self, js: JetStreamContext, info: ConsumerInfo) -> ConsumerInfo:
        """`rewind` the durable, counted; the next delivery expected is the new durable's first."""
        info = await rewind(js, info)
        metrics.CONSUMER_REWINDS.labels(self.service, self.name).inc()
        self._deliveries.expected = _next_delivery(info)
        return info

    async def run(self, nc: NatsClient) -> None:
        """Pull continuously until `stop()`: one outstanding pull request, messages handled as
        they arrive, in chunks of whatever has arrived (so batches grow under load and a lone
        live message is handled at once — FastStream's batch fetch waits for a full batch).
        Deliveries with a gap rewind the durable to its ack floor and pull on from there."""
        js = nc.jetstream()
        await self.ensure(js, server_version(nc))  # again: a restarted loop may find it deleted, or unacked
        while not self._stopping.is_set():
            try:
                await self._pull(nc)
            except _Gap:
                await nc.flush()  # the acks sent so far reach the server before its floor is read
                await self._rewind(js, await js.consumer_info(self.stream, self.durable))

    async def _pull(self, nc: NatsClient) -> None:
        """One run of pull requests on an inbox of its own (a rewind leaves the old one's
        deliveries behind)."""
        batch_size = self.batch_size
        queue: asyncio.Queue[Msg | None] = asyncio.Queue()
        self._queue = queue

        async def enqueue(msg: Msg) -> None:
            queue.put_nowait(msg)

        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=enqueue)
        request_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.durable}"
        gather = orjson.dumps({"batch": batch_size, "no_wait": True})  # what is there now, then 404 (no messages)
        stream = orjson.dumps({"batch": batch_size, "expires": int(PULL_EXPIRES_S * 1e9)})  # as they come
        try:
            while not self._stopping.is_set():
                lingering = self._lingering
                await nc.publish(request_subject, gather if lingering else stream, reply=inbox)
                received = await self._drain_request(queue, batch_size, streaming=not lingering)
                if lingering and received < batch_size:
                    await self._stopped_within(self.linger_s)
        finally:
            await sub.unsubscribe()

    async def _drain_request(self, queue: asyncio.Queue[Msg | None], batch_size: int, *, streaming: bool) -> int:
        """Handle the messages one pull request brings, until it is used up or expires; returns
        how many it brought. A streaming request that a chunk turned lingering (`linger_while`)
        lets the rest of its messages gather for `linger_s` after each chunk."""
        received = 0
        while received < batch_size and not self._stopping.is_set():
            if queue.empty():
                try:
                    async with asyncio.timeout(PULL_EXPIRES_S + 1.0):  # no task per wait, as wait_for makes
                        first = await queue.get()
                except TimeoutError:
                    return received  # the request was lost (e.g. a reconnect): send another
            else:
                first = queue.get_nowait()
            chunk = [first]
            while not queue.empty() and len(chunk) < batch_size:
                chunk.append(queue.get_nowait())
            data, done = _split(chunk)
            received += len(data)
            if data and not await self.consume(data):
                raise _Gap
            if done:
                return received
            if streaming and self._lingering and len(data) < batch_size:
                await self._stopped_within(self.linger_s)
        return received

    def stop(self) -> None:
        """Finish the chunk in hand, then stop pulling (what was delivered and not handled comes
        again to the next instance: it starts by rewinding to the ack floor)."""
        self._stopping.set()
        self._queue.put_nowait(None)

    async def consume(self, batch: Sequence[Msg]) -> bool:
        """Handle a chunk in stream order, then settle it: with an ack-all durable one ack of its
        last delivery, so nothing in it is acked before everything before it is done. Returns
        False when the deliveries had a gap: what came before it is handled and settled, the rest
        is left for the rewind."""
        self.last_batch_at = datetime.now(tz=UTC)
        if self.gate is not None and not self.gate.is_set():
            await self.gate.wait()
        batch, last, top, gap = self._in_order(batch)
        for subject, count in Counter(msg.subject for msg in batch).items():
            metrics.BUS_IN.labels(self.service, subject).inc(count)
        try:
            good = await self._admit(batch)
        except _Interrupted:
            return True  # stopping during an outage: nothing of the chunk is acked, all of it comes again
        if good and self._linger_while is not None:
            self._lingering = bool(self.linger_s) and self._linger_while([event for event, _ in good])
        try:
            held = await self._handle(good) if good else ()
        except _Interrupted:
            return True  # stopping during an outage: nothing of the chunk is acked, all of it comes again
        self._deliveries.handled_through = top
        await self._settle(batch, last, good, held)
        return not gap

    def _in_order(self, batch: Sequence[Msg]) -> tuple[list[Msg], Msg | None, int, bool]:
        """The chunk's deliveries up to the first gap in the consumer's delivery sequence, less
        what an ack-all consumer handled already in this run (sent again: an ack lost in a
        reconnect, an ack_wait that ran out); the delivery with the highest stream sequence (what
        an ack-all acks) and that sequence; and whether there was a gap."""
        deliveries = self._deliveries
        skip_seen = self._ack_all
        fresh: list[Msg] = []
        last: Msg | None = None
        top = deliveries.handled_through
        last_seq = 0
        gap = False
        for msg in batch:
            stream_seq, consumer_seq = _sequences(msg)
            if consumer_seq != deliveries.expected:
                log.warning(
                    "deliveries have a gap; rewinding to the ack floor",
                    consumer=self.name, expected=deliveries.expected, got=consumer_seq,
                )  # fmt: skip
                gap = True
                break
            deliveries.expected = consumer_seq + 1
            if stream_seq > last_seq:  # what an ack-all acks: the chunk's highest, handled now or before
                last, last_seq = msg, stream_seq
            if stream_seq > top:
                top = stream_seq
            elif skip_seen:
                continue
            fresh.append(msg)
        return fresh, last, top, gap

    async def _admit(self, batch: Sequence[Msg]) -> list[tuple[E, Msg]]:
        """The chunk's messages that pass the door, decoded; every other one is dead-lettered with
        its reason (never handed on, so never both stored and dead-lettered)."""
        admission = self._admission
        now = admission.clock() if admission is not None else datetime.now(tz=UTC)
        good: list[tuple[E, Msg]] = []
        for msg in batch:
            if self._accept is not None and not self._accept(msg.subject):
                continue
            refusal = admission.oversized(len(msg.data)) if admission is not None else None
            if refusal is None:
                try:
                    event = self.model.model_validate_json(msg.data)
                except ValidationError as exc:
                    refusal = admission.undecodable(msg.data, self.model) if admission is not None else None
                    refusal = refusal or Refusal("malformed", _validation_summary(exc))
                else:
                    refusal = admission.refusal(event, now) if admission is not None else None
                    if refusal is None:
                        good.append((event, msg))
                        continue
            await self._dead_letter(msg, refusal.reason, refusal.detail)
        if good and self._screen is not None:
            verdicts = await self._screened([event for event, _ in good])
            for (_, msg), refusal in zip(good, verdicts, strict=True):
                if refusal is not None:
                    await self._dead_letter(msg, refusal.reason, refusal.detail)
            good = [pair for pair, refusal in zip(good, verdicts, strict=True) if refusal is None]
        return good

    async def _screened(self, events: list[E]) -> Sequence[Refusal | None]:
        """The service's screen on `events`; an outage of the database or the bus (the screen may
        read stored state) is retried in place like the handler's."""
        assert self._screen is not None
        outages = 0
        while True:
            try:
                return await self._screen(events)
            except Exception as exc:
                if not is_transient(exc):
                    raise  # the consumer's loop restarts and rewinds: nothing is lost or skipped
                outages += 1
                await self._wait_out(exc, outages)

    async def _handle(self, good: list[tuple[E, Msg]]) -> Collection[str]:
        """The handler on the whole chunk; when that fails, on each event alone."""
        with metrics.HANDLER_SECONDS.labels(self.service, self.name).time():
            try:
                return await self.handler([event for event, _ in good]) or ()
            except Exception as exc:  # noqa: BLE001 - isolate the failing message below
                metrics.HANDLER_ERRORS.labels(self.service, self.name, type(exc).__name__).inc()
                log.warning("batch failed; retrying one by one", consumer=self.name, error=repr(exc))
        held: set[str] = set()
        for event, msg in good:
            with trace_context(trace_id=event.trace_id, event_id=event.event_id):
                held.update(await self._retry_one(event, msg))
        return held

    async def _retry_one(self, event: E, msg: Msg) -> Collection[str]:
        """One event alone; its log lines (the handler's too) carry its trace id. An outage of the
        database or the bus is retried in place, with backoff, until it passes (nothing later is
        handled first: order holds); any other failure — the message's own, or a permanent
        refusal of what it publishes — dead-letters it after `MAX_ATTEMPTS`."""
        attempts = outages = 0
        while True:
            try:
                return await self.handler([event]) or ()
            except Exception as exc:  # a message never kills the consumer
                if is_transient(exc):
                    outages += 1
                    await self._wait_out(exc, outages)
                    continue
                attempts += 1
                if attempts == MAX_ATTEMPTS:
                    reason = "refused" if isinstance(exc, PublishRefused) else "handler_error"
                    await self._dead_letter(msg, reason, repr(exc))
                    return ()
                if await self._stopped_within(_backoff(attempts)):
                    raise _Interrupted from exc

    async def _wait_out(self, exc: BaseException, outages: int) -> None:
        """Back off before retrying in place through an outage (and while the instance lease is
        lost); a stop meanwhile interrupts the chunk: nothing of it is acked."""
        log.warning("transient failure; retrying in place", consumer=self.name, error=repr(exc))
        if await self._stopped_within(_backoff(outages)):
            raise _Interrupted from exc
        if self.gate is not None and not self.gate.is_set():
            await self.gate.wait()

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    async def _settle(
        self, batch: Sequence[Msg], last: Msg | None, good: list[tuple[E, Msg]], held: Collection[str]
    ) -> None:
        """Ack what is done (with an ack-all durable, `last` settles everything up to it); keep
        what the handler holds back for `release`."""
        if self._ack_all:
            if held:
                raise TypeError(f"consumer {self.name} acks all: its handler may not hold deliveries back")
            if last is not None:
                await last.ack()
            return
        kept = {id(msg) for event, msg in good if event.event_id in held}
        for event, msg in good:
            if id(msg) in kept:
                self._held[event.event_id] = msg
        for msg in batch:
            if id(msg) not in kept:
                await msg.ack()

    async def release(self, event_ids: Iterable[str]) -> None:
        """Ack held-back deliveries once the handler has made them durable (unknown ids are ignored)."""
        for event_id in event_ids:
            msg = self._held.pop(event_id, None)
            if msg is not None:
                await msg.ack()

    @property
    def held(self) -> int:
        return len(self._held)

    async def _dead_letter(self, msg: Msg, reason: str, error: str) -> None:
        meta = msg.metadata
        seq = meta.sequence.stream if meta else 0
        kept = msg.data[:DLQ_PAYLOAD_MAX_BYTES]  # a too-large message must not make a too-large dead letter
        try:
            payload: dict[str, object] = {"payload": kept.decode("utf-8")}
        except UnicodeDecodeError:
            payload = {"payload_base64": base64.b64encode(kept).decode()}
        if len(kept) < len(msg.data):
            payload["payload_bytes"] = len(msg.data)
        body = orjson.dumps(
            {
                "service": self.service,
                "consumer": self.name,
                "subject": msg.subject,
                "reason": reason,
                "error": error,
                "stream": meta.stream if meta else None,
                "stream_seq": seq,
                "num_delivered": meta.num_delivered if meta else None,
                "failed_at": datetime.now(tz=UTC).isoformat().replace("+00:00", "Z"),
                **payload,
            }
        )
        await self._publisher().publish_raw(subjects.dlq(self.service), body, f"dlq:{self.service}:{self.name}:{seq}")
        metrics.DLQ_MESSAGES.labels(self.service, reason).inc()
        log.warning("message dead-lettered", consumer=self.name, subject=msg.subject, reason=reason, error=error)


PULL_EXPIRES_S: Final = 5.0
DLQ_PAYLOAD_MAX_BYTES: Final = 64 * 1024
"""A dead letter keeps at most this much of the message (and says how large it was)."""
_REQUEST_DONE: Final = frozenset({"404", "408", "409"})


def _split(chunk: list[Msg | None]) -> tuple[list[Msg], bool]:
    """The deliveries of a chunk, and whether the chunk ends the pull request: a stop's None, or
    a JetStream status that ends it (404 no messages, 408 request expired, 409); other statuses
    (100 heartbeat) are neither. A delivery is told by its reply subject, never by its headers: a
    published message may carry a `Status` header of its own."""
    data: list[Msg] = []
    done = False
    for msg in chunk:
        if msg is None:
            done = True
        elif msg.reply:  # a delivery (its reply is its ack subject), empty or not; statuses have none
            data.append(msg)
        elif msg.headers and msg.headers.get("Status", "") in _REQUEST_DONE:
            done = True
    return data, done


@dataclasses.dataclass(slots=True)
class _Deliveries:
    """Where a consumer stands in its durable's deliveries."""

    expected: int = 1
    """The consumer sequence the next delivery must carry (the server counts every delivery)."""
    handled_through: int = 0
    """The highest stream sequence handled (or settled) by this process."""


def _sequences(msg: Msg) -> tuple[int, int]:
    """(stream sequence, consumer sequence) of a JetStream delivery, read off its reply subject
    (nats-py's `metadata` builds a timestamp and an object for each)."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
        return int(tokens[5]), int(tokens[6])
    if len(tokens) >= 11:  # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.…
        return int(tokens[7]), int(tokens[8])
    raise nats.errors.NotJSMessageError


async def rewind(js: JetStreamContext, info: ConsumerInfo) -> ConsumerInfo:
    """Recreate a durable to start at its ack floor + 1: everything not acked comes again, in
    stream order, before anything newer (JetStream itself would redeliver it only after its
    ack_wait, and after the newer messages). Sound while one process consumes the durable (the
    service's instance lease). A durable that never acked and did not start at a known sequence
    (deliver NEW or LAST) cannot be placed: it is left as it is."""
    config = info.config
    floor = info.ack_floor.stream_seq if info.ack_floor else 0
    if floor:
        start = floor + 1
    elif config.deliver_policy == DeliverPolicy.ALL:
        start = 1
    elif config.deliver_policy == DeliverPolicy.BY_START_SEQUENCE and config.opt_start_seq:
        start = config.opt_start_seq
    else:
        log.warning("durable never acked and has no known start; not rewound", durable=config.durable_name)
        return info
    config = dataclasses.replace(
        config, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start, opt_start_time=None
    )
    await js.delete_consumer(info.stream_name, info.name)
    info = await js.add_consumer(info.stream_name, config=config)
    log.warning("durable rewound to redeliver unacked messages in order", durable=info.name, start_seq=start)
    return info


def _next_delivery(info: ConsumerInfo) -> int:
    return (info.delivered.consumer_seq if info.delivered else 0) + 1


class _Gap(Exception):
    """Deliveries came with a gap: the durable must be rewound before pulling on."""


class _Interrupted(Exception):
    """The consumer was stopped while retrying through an outage."""


def _backoff(outages: int) -> float:
    return min(30.0, 0.25 * 2.0 ** min(outages, 7))


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:5])


async def consumer_lag(js: JetStreamContext, consumer: BatchConsumer[Any]) -> int:
    """Messages the durable has not yet had acked: still pending plus delivered-but-unacked."""
    info = await js.consumer_info(consumer.stream, consumer.durable)
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
