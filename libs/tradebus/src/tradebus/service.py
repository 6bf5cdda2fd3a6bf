"""The service shell: one FastStream NATS broker, one asyncpg pool, one FastAPI app per service.

A service declares its consumers, readiness checks, background loops and HTTP routes on a
`Service`; the shell owns the order of start-up (database and migrations, then bus and streams,
then the service's own state, then consumers) and of shutdown (consumers stop first, the
service persists, connections close last), the health endpoints, `/metrics`, the heartbeat on
`telemetry.heartbeat.<service>` and the OpenAPI and AsyncAPI documents.

One instance of a service is active at a time (`tradebus.lease`): a second one waits as a
standby — its health endpoints answer, readiness says who is active, its other routes answer
503 — and takes over, loading state and starting consumers, when the active one stops or dies.
An `observer` (the console) only reads: no database, lease, streams or heartbeat, and every
instance of it is active at once.

Every service's HTTP API is rate limited (`tradebus.ratelimit`, windows in Redis shared by its
instances, in-process while Redis is down: the non-critical `redis` check says which).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import asyncpg
import nats
import nats.errors
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from faststream.nats import JStream, NatsBroker
from faststream.security import SASLPlaintext
from faststream.specification import AsyncAPI
from nats.js.api import DeliverPolicy

from tradebus import apidocs, db, metrics, natsauth, subjects
from tradebus.admission import Admission, Screen
from tradebus.bus import BatchConsumer, BatchHandler, Publisher, consumer_lag, ensure_streams, server_version
from tradebus.events import Envelope, Heartbeat, HeartbeatEvent, trace_id_for
from tradebus.feedhealth import feeds
from tradebus.lease import InstanceLease, LeaseLost
from tradebus.logging import configure_logging, get_logger
from tradebus.ratelimit import Limits, RateLimiter, RateLimitMiddleware
from tradebus.redislink import RedisLink
from tradebus.settings import Settings, port_for
from tradebus.timeframes import datetime_to_ms

log = get_logger(__name__)

E = TypeVar("E", bound=Envelope)
Hook = Callable[[], Awaitable[None]]

CORE_CHECKS: Final = ("bus", "database", "consumers", "lease")
FENCED_EXIT_CODE: Final = 75
"""Exit status of a process fenced off by another instance's take-over (its supervisor restarts
it, as a standby)."""
ALWAYS_SERVED: Final = ("/health", "/metrics", "/docs", "/redoc", "/openapi.json")
"""Routes a standby serves too; the service's own answer 503 until it is active."""
UNLIMITED: Final = (*ALWAYS_SERVED, "/static")
"""Routes no rate limit applies to: probes, scrapes, documents and the console's static files."""
EXIT_LOGIN_REFUSED: Final = 78
"""Exit code (EX_CONFIG) of a service whose NATS credentials are refused: restarting will not help."""
STOP_TIMEOUT_S: Final = 10.0
LAG_POLL_S: Final = 5.0
"""How often each durable's backlog is read from the server (the lag gauge, stall detection)."""
GC_THRESHOLDS: Final = (50_000, 20, 100)
"""Collector thresholds once a service runs: every decoded message allocates a few dozen objects,
and with the default (700, 10, 10) the collector rescans the long-lived state (series, books,
held bars) so often that it cost ~30% of a decode-and-encode loop over a large heap."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    detail: str


CheckFn = Callable[[], Awaitable[CheckResult]]


class Service:
    """Everything one tradebus service shares with the others; see the module docstring."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        migrations: str | None = None,
        version: str = "0.1.0",
        observer: bool = False,
    ):
        self.name = name
        self.observer = observer
        self.settings = settings
        self.version = version
        self.instance = settings.instance or f"{socket.gethostname()}-{os.getpid()}"
        self.started_at = datetime.now(tz=UTC)
        self._started_ms = datetime_to_ms(self.started_at)
        self._login_error: natsauth.CredentialsError | None = None
        try:
            self.login = natsauth.settings_login(settings, name)
            """Its own NATS user (DESIGN.md "Who may publish what"); None only where auth is off."""
        except natsauth.CredentialsError as exc:  # reported by start(), as a refused login is
            self.login, self._login_error = None, exc
        self._nats_url = natsauth.strip_userinfo(settings.nats_url) if self.login else settings.nats_url
        self.broker = NatsBroker(
            self._nats_url,
            name=f"tradebus-{name}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            graceful_timeout=15.0,
            log_level=logging.DEBUG,
            security=SASLPlaintext(self.login.user, self.login.password) if self.login else None,
            inbox_prefix=natsauth.inbox_prefix(self.login.user if self.login else ""),
        )
        # Documents the subjects for AsyncAPI; never connected. Consuming is BatchConsumer's pull loop.
        self._spec = NatsBroker(settings.nats_url)
        self.router = APIRouter()
        self._migrations = migrations
        self._pool: asyncpg.Pool | None = None
        self._publisher: Publisher | None = None
        self._consumers: list[BatchConsumer[Any]] = []
        self._backlog_since: dict[str, datetime] = {}
        """When each consumer's durable was first seen with a backlog (cleared once it has none)."""
        self._own_process = False
        """Set by `run`: the process is this service's alone, so its collector may be tuned."""
        self._checks: dict[str, tuple[CheckFn, bool]] = {}
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._loops: list[Hook] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer_tasks: list[asyncio.Task[None]] = []
        self._consuming = False
        self._lease: InstanceLease | None = None
        self._standby: asyncio.Task[None] | None = None
        self._active = False
        self._fenced = ""
        self.stopping = asyncio.Event()
        self.redis = RedisLink(settings.redis_url)
        self.limiter = RateLimiter(
            name,
            Limits(settings.rate_limit_window_s, settings.rate_limit_per_client, settings.rate_limit_per_token),
            self.redis,
        )
        self.check("redis", critical=False)(self._redis_check)

    # ----------------------------------------------------------------- declarations
    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{self.name}: database pool used before start-up")
        return self._pool

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            raise RuntimeError(f"{self.name}: publisher used before start-up")
        return self._publisher

    def consumer(
        self,
        *,
        name: str,
        stream: str,
        subject: str,
        model: type[E],
        filter_subjects: Sequence[str] = (),
        batch_size: int = 500,
        deliver_policy: DeliverPolicy = DeliverPolicy.ALL,
        accept: Callable[[str], bool] | None = None,
        holds: bool = False,
        linger_s: float = 0.0,
        linger_while: Callable[[Sequence[E]], bool] | None = None,
        documented_as: type[Envelope] | None = None,
        admission: Admission | None = None,
        screen: Screen[E] | None = None,
        screen_reasons: Sequence[str] = (),
    ) -> Callable[[BatchHandler[E]], BatchHandler[E]]:
        """Register a batch handler for `model` events on `subject` (durable `<service>-<name>`).

        For a consumer that must see several subjects in one stream order (e.g. `bars.>` minus
        1m), `filter_subjects` lists them (servers 2.10+ then send nothing else) and
        `accept(subject)` drops (acks undecoded) the rest where the server sends all of `subject`.
        A consumer's durable acks all (one ack settles a handled chunk) unless it `holds`: then its
        handler may return event ids it holds back, unacked, until `held(name).release(ids)`.
        A consumer that need not see each message at once may `linger_s`, or linger only after a
        chunk `linger_while` holds for (see `BatchConsumer`).
        `documented_as` names the contract's schema in the AsyncAPI document when `model` is a
        consumer's own reading of it (only the fields it uses).
        Every message passes `admission` first (by default the service settings' size limit,
        symbols and time windows, `tradebus.admission`), then the service's own `screen` of the
        decoded chunk, if any; what fails is dead-lettered with the reason, never handled.
        """

        def register(handler: BatchHandler[E]) -> BatchHandler[E]:
            consumer = BatchConsumer(
                service=self.name,
                name=name,
                model=model,
                handler=handler,
                publisher=lambda: self.publisher,
                stream=stream,
                durable=f"{self.name}-{name}",
                subject=subject,
                filter_subjects=filter_subjects,
                batch_size=batch_size,
                deliver_policy=deliver_policy,
                accept=accept,
                holds=holds,
                linger_s=linger_s,
                linger_while=linger_while,
                admission=admission or Admission.of(self.settings),
                screen=screen,
                screen_reasons=screen_reasons,
            )
            self._consumers.append(consumer)
            self._document_subscriber(
                stream, subject, documented_as or model, f"{self.name}:{name}", handler.__doc__ or ""
            )
            return handler

        return register

    def held(self, name: str) -> BatchConsumer[Any]:
        """The consumer registered as `name`, to release (ack) what its handler held back."""
        for consumer in self._consumers:
            if consumer.name == name:
                return consumer
        raise KeyError(f"no consumer named {name!r}")

    def _document_subscriber(
        self, stream: str, subject: str, model: type[Envelope], title: str, description: str
    ) -> None:
        async def consumes(event: Any) -> None:  # pragma: no cover - documentation only, never called
            del event

        consumes.__annotations__ = {"event": model, "return": None}
        self._spec.subscriber(subject, stream=JStream(stream, declare=False), title=title, description=description)(
            consumes
        )

    def publishes(self, subject: str, model: type[Envelope], description: str) -> None:
        """Document a published subject in the AsyncAPI document (publishing goes via `publisher`)."""
        self._spec.publisher(subject, schema=model, title=f"{self.name}:{subject}", description=description)

    def check(self, name: str, *, critical: bool = True) -> Callable[[CheckFn], CheckFn]:
        """Add a readiness check; a failing non-critical check makes the service `degraded`, not down."""

        def register(fn: CheckFn) -> CheckFn:
            self._checks[name] = (fn, critical)
            return fn

        return register

    def on_startup(self, fn: Hook) -> Hook:
        """Run after the database and bus are up, before consumers start (load state here)."""
        self._startup.append(fn)
        return fn

    def on_shutdown(self, fn: Hook) -> Hook:
        """Run after consumers stopped, while the database and bus are still open (persist here)."""
        self._shutdown.append(fn)
        return fn

    def background(self, fn: Hook) -> Hook:
        """A loop that runs while the service runs; it is restarted if it raises."""
        self._loops.append(fn)
        return fn

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        configure_logging(self.name, self.settings.log_level, self.settings.log_format)
        if self.observer:
            await self._check_login()
            await self.broker.connect()
            await self._activate()
            return
        self._pool = await db.create_pool(self.settings.database_url, schema=self.name)
        if self._migrations:
            await db.migrate(self._pool, self.name, self._migrations)
        await self._check_login()
        await self.broker.connect()
        js = self.broker.connection.jetstream()
        await ensure_streams(js)
        self._publisher = Publisher(self.broker.connection, self.name)
        self._lease = InstanceLease(
            self.settings.database_url, service=self.name, schema=self.name, instance=self.instance
        )
        if await self._lease.try_acquire():
            await self._activate()
            return
        holder = await self._lease.holder()
        log.warning(
            "another instance is active; this one waits as a standby and takes over when it stops",
            active=holder.describe() if holder else "unknown",
            instance=self.instance,
        )
        self._standby = asyncio.create_task(self._take_over())

    async def _take_over(self) -> None:
        assert self._lease is not None
        await self._lease.acquire()
        log.warning("taking over as the active instance", instance=self.instance, epoch=self._lease.epoch)
        await self._activate()

    async def _activate(self) -> None:
        """Load state and start consuming: only the lease holder does (an observer at once)."""
        assert self._lease is not None or self.observer
        for hook in self._startup:
            await hook()
        await self.broker.start()  # FastStream subscribers a service registers itself (not hot paths)
        nc = self.broker.connection
        js = nc.jetstream()
        for consumer in self._consumers:  # durables exist when start() returns: nothing published is missed
            assert self._lease is not None, "an observer has no durable consumers"
            consumer.gate = self._lease.held
            await consumer.ensure(js, server_version(nc))
        pulls = [functools.partial(consumer.run, nc) for consumer in self._consumers]
        self._consumer_tasks = [asyncio.create_task(self._supervise(pull)) for pull in pulls]
        self._consuming = True
        self._active = True
        own = (self._heartbeat, self._watch_lag, self._watch_lease) if not self.observer else ()
        loops = (*own, *self._loops)
        self._tasks = [asyncio.create_task(self._supervise(loop)) for loop in loops]
        if self._own_process:
            _settle_heap()
        log.info("service started", instance=self.instance, consumers=[c.name for c in self._consumers])

    async def _watch_lease(self) -> None:
        """Pause while the lease's connection is lost; stop for good when another instance took over."""
        assert self._lease is not None
        try:
            await self._lease.watch()
        except LeaseLost as exc:
            self._fenced = str(exc)
            log.error("fenced off: stopping without writing anything more", reason=self._fenced)
            for consumer in self._consumers:
                consumer.stop()
            if self._own_process:
                os._exit(FENCED_EXIT_CODE)

    async def stop(self) -> None:
        self.stopping.set()
        if self._standby is not None:
            self._standby.cancel()
            await asyncio.gather(self._standby, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
            for task in stuck:  # shutdown must finish even if a loop ignores its cancellation
                log.error("background loop did not stop; abandoning it", task=task.get_name())
        for consumer in self._consumers:
            consumer.stop()
        _, pending = await asyncio.wait(self._consumer_tasks, timeout=20.0) if self._consumer_tasks else ((), ())
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._consumer_tasks, return_exceptions=True)
        self._consuming = False
        for hook in self._shutdown if self._active and not self._fenced else ():
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook failed", hook=getattr(hook, "__name__", repr(hook)))
        if self._lease is not None:
            await self._lease.release()
        await self.broker.stop()
        if self._pool is not None:
            await self._pool.close()
        await self.redis.close()
        log.info("service stopped")

    async def _check_login(self) -> None:
        """Fail at once, with one clear line, when NATS refuses this service's credentials (the
        broker would retry a refused login forever, logging each attempt); a server that does not
        answer yet is left to the broker's reconnect loop."""

        async def quiet(_: Exception) -> None:
            """nats-py would print a traceback of each failed attempt."""

        if self._login_error is not None:
            raise natsauth.LoginRefused(f"{self.name}: {self._login_error}; set NATS_USER / NATS_PASSWORD")
        options: dict[str, Any] = self.login.connect_options() if self.login else {}
        try:
            nc = await nats.connect(
                self._nats_url,
                allow_reconnect=False,
                connect_timeout=5,
                error_cb=quiet,
                name=f"tradebus-{self.name}-login",
                **options,
            )
        except nats.errors.NoServersError:
            return
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            if natsauth.is_auth_refusal(exc):
                who = f"user {self.login.user!r}" if self.login else "an anonymous connection"
                raise natsauth.LoginRefused(
                    f"NATS at {self._nats_url} refused {who} ({exc}); check NATS_USER / NATS_PASSWORD / "
                    f"NATS_PASSWORD_FILE / NATS_CREDENTIALS_DIR (local mode writes them at `make up`)"
                ) from None
            return
        await nc.close()

    async def _supervise(self, loop: Hook) -> None:
        name = getattr(loop, "__name__", "loop")
        while not self.stopping.is_set():
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background loop failed; restarting", loop=name)
                await asyncio.sleep(1.0)

    async def _heartbeat(self) -> None:
        beat = 0
        # Not `while True`: Python 3.11's wait_for (the readiness checks) can swallow the stop's
        # cancellation, and a heartbeat loop left running beats on a closed connection forever.
        while not self.stopping.is_set():
            status, checks = await self.readiness()
            metrics.SERVICE_UP.labels(self.name).set(1 if status != "down" else 0)
            for check, result in checks.items():
                metrics.READINESS_CHECK.labels(self.name, check).set(1 if result.ok else 0)
            event = HeartbeatEvent.build(
                event_id=f"heartbeat:{self.name}:{self.instance}:{self._started_ms}:{beat}",
                source=self.name,
                trace_id=trace_id_for(f"heartbeat:{self.name}:{self.instance}"),
                data=Heartbeat(
                    service=self.name,
                    instance=self.instance,
                    started_at=self.started_at,
                    status=status,
                    checks={k: v.ok for k, v in checks.items()},
                    feeds=feeds(self.name).snapshots(),
                ),
            )
            try:
                await self.publisher.publish(subjects.heartbeat(self.name), event)
            except Exception as exc:  # noqa: BLE001 - the bus may be down; readiness says so
                log.warning("heartbeat not published", error=repr(exc))
            beat += 1
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    async def _watch_lag(self) -> None:
        js = self.broker.connection.jetstream()
        while not self.stopping.is_set():
            for consumer in self._consumers:
                try:
                    lag = await consumer_lag(js, consumer)
                except Exception as exc:  # noqa: BLE001 - lag is best effort; readiness covers the bus
                    log.debug("consumer lag unknown", consumer=consumer.name, error=repr(exc))
                    continue
                metrics.CONSUMER_LAG.labels(self.name, consumer.name).set(lag)
                if lag:
                    self._backlog_since.setdefault(consumer.name, datetime.now(tz=UTC))
                else:
                    self._backlog_since.pop(consumer.name, None)
            await asyncio.sleep(LAG_POLL_S)

    def stalled(self) -> list[str]:
        """Consumers that have had a backlog and handled nothing for `consumer_stall_s` (a stuck
        handler, a dead pull loop), while they may run (a standby's gate is closed on purpose)."""
        now = datetime.now(tz=UTC)
        limit = timedelta(seconds=self.settings.consumer_stall_s)
        return [
            consumer.name
            for consumer in self._consumers
            if (since := self._backlog_since.get(consumer.name)) is not None
            and now - since > limit
            and now - (consumer.last_batch_at or self.started_at) > limit
            and (consumer.gate is None or consumer.gate.is_set())
        ]

    # ----------------------------------------------------------------- health
    async def readiness(self) -> tuple[str, dict[str, CheckResult]]:
        """`ok`, `degraded` or `down`, with each named check's result."""
        results: dict[str, CheckResult] = {"bus": self._bus_check()}
        if not self.observer:
            results["database"] = await self._database_check()
        results["consumers"] = self._consumers_check()
        if not self.observer:
            results["lease"] = await self._lease_check()
        critical = set(CORE_CHECKS)
        for name, (fn, is_critical) in self._checks.items():
            try:
                results[name] = await asyncio.wait_for(fn(), timeout=3.0)
            except Exception as exc:  # noqa: BLE001 - a broken check reports, it does not raise
                results[name] = CheckResult(False, f"check failed: {exc!r}")
            if is_critical:
                critical.add(name)
        if any(not r.ok for n, r in results.items() if n in critical):
            return "down", results
        if any(not r.ok for r in results.values()):
            return "degraded", results
        return "ok", results

    def _bus_check(self) -> CheckResult:
        try:
            connected = self.broker.connection.is_connected
        except Exception:  # noqa: BLE001 - not connected yet
            connected = False
        return CheckResult(connected, f"NATS {'connected' if connected else 'not connected'}")

    async def _database_check(self) -> CheckResult:
        if self._pool is None:
            return CheckResult(False, "database pool not open")
        try:
            await db.ping(self._pool, service=self.name)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return CheckResult(False, f"database unreachable: {exc!r}")
        return CheckResult(True, "database answers")

    async def _lease_check(self) -> CheckResult:
        lease = self._lease
        if self._fenced:
            return CheckResult(False, f"fenced off: {self._fenced}")
        if lease is None:
            return CheckResult(False, "not started")
        if lease.held.is_set():
            return CheckResult(True, f"active instance {self.instance} (epoch {lease.epoch})")
        if self._active:
            return CheckResult(False, "lease connection lost: handling paused until it is held again")
        try:
            holder = await lease.holder()
        except Exception as exc:  # noqa: BLE001 - the database may be down; say so
            return CheckResult(False, f"standby; the active instance is unknown: {exc!r}")
        active = holder.describe() if holder else "unknown"
        return CheckResult(False, f"standby: {active} is active; this one takes over when it stops")

    async def _redis_check(self) -> CheckResult:
        """Never critical: without Redis limits hold per instance and the console rebuilds its state."""
        await self.redis.ping()
        return CheckResult(bool(self.redis.up), self.redis.detail)

    def _consumers_check(self) -> CheckResult:
        if not self._consumers:
            return CheckResult(True, "no consumers")
        if not self._consuming:
            return CheckResult(False, "consumers not started")
        dead = [c.name for c, t in zip(self._consumers, self._consumer_tasks, strict=True) if t.done()]
        if dead:
            return CheckResult(False, f"consumers stopped: {', '.join(dead)}")
        names = ", ".join(c.name for c in self._consumers)
        return CheckResult(True, f"consuming: {names}")

    # ----------------------------------------------------------------- HTTP
    def app(self) -> FastAPI:
        """The ASGI app: the service's routes plus health, metrics and the two API documents."""

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        title = f"tradebus {self.name}"
        app = FastAPI(title=title, version=self.version, lifespan=lifespan, docs_url=None, redoc_url=None)
        app.include_router(self.router)
        apidocs.mount(app, title, self._asyncapi)

        async def standby_guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            waiting = self._standby is not None and not self._active
            if not (waiting or self._fenced) or request.url.path.startswith(ALWAYS_SERVED):
                return await call_next(request)
            return JSONResponse({"detail": (await self._lease_check()).detail}, status_code=503)

        if not self.observer:  # an observer is never a standby
            app.middleware("http")(standby_guard)
        app.add_middleware(RateLimitMiddleware, limiter=self.limiter, unlimited=UNLIMITED)

        @app.get("/health/live", tags=["health"])
        async def live() -> JSONResponse:
            """200 while the process works; 503 when a consumer is stalled with every dependency up
            (a restart may help; it cannot while the database or the bus is down)."""
            if (stalled := self.stalled()) and (await self.readiness())[0] != "down":
                detail = f"no progress for {self.settings.consumer_stall_s:.0f} s with a backlog: {', '.join(stalled)}"
                return JSONResponse({"service": self.name, "status": "stalled", "detail": detail}, status_code=503)
            return JSONResponse({"service": self.name, "status": "ok"})

        @app.get("/health/ready", tags=["health"])
        async def ready() -> JSONResponse:
            status, checks = await self.readiness()
            body = {
                "service": self.name,
                "status": status,
                "checks": {k: {"ok": v.ok, "detail": v.detail} for k, v in checks.items()},
            }
            return JSONResponse(body, status_code=503 if status == "down" else 200)

        @app.get("/metrics", tags=["health"])
        async def prometheus_metrics() -> Response:
            body, content_type = metrics.render_latest()
            return Response(body, media_type=content_type)

        return app

    def _asyncapi(self) -> Any:
        return AsyncAPI(self._spec, title=f"tradebus {self.name}", version=self.version).to_specification()

    def run(self) -> None:
        """Serve the app on the service's port until SIGINT/SIGTERM (uvicorn handles both)."""
        self._own_process = True
        configure_logging(self.name, self.settings.log_level, self.settings.log_format)
        try:
            asyncio.run(self._check_login())
        except natsauth.LoginRefused as exc:
            log.error("cannot start: NATS refused the login", error=str(exc))
            raise SystemExit(EXIT_LOGIN_REFUSED) from None
        uvicorn.run(
            self.app(),
            host=self.settings.http_host,
            port=port_for(self.name),
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=20,
        )


def _settle_heap() -> None:
    """Freeze what start-up built (imports, loaded state: never garbage) out of the collector's
    scans, and collect less often; cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
