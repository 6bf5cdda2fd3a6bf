"""The console's live loop: bus events in (core subscriptions), deltas out to browsers, state to Redis.

At start the state comes from the Redis snapshot when there is one (served at once), and is then
reconciled from the services' APIs and the streams' last messages — the only source when Redis is
down. The bus is followed with plain core subscriptions: the console creates no consumer, so it
leaves nothing behind on the server and never acknowledges a message for a service.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any, Final

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from tradebus.logging import get_logger
from tradebus.natsauth import CONSOLE_FOLLOWS
from tradebus.service import Service
from tradebus_console import metrics
from tradebus_console.hub import Hub
from tradebus_console.settings import ConsoleSettings
from tradebus_console.state import Delta, LiveState, model_for
from tradebus_console.store import SnapshotStore
from tradebus_console.upstream import Upstream

log = get_logger(__name__)

ACCOUNT_KINDS: Final = frozenset({"position", "equity", "decision"})
"""Deltas after which the account (equity, cash, P&L, drawdown) is read again from risk."""
RECONCILE_RETRY_S: Final = 2.0
RECONCILE_MAX_RETRY_S: Final = 30.0
PENDING_MSGS: Final = 200_000
"""Per subscription; a replay at full speed bursts bars faster than a browser needs them."""


class Console:
    def __init__(self, service: Service, settings: ConsoleSettings) -> None:
        self.service = service
        self.settings = settings
        self.state = LiveState()
        self.hub = Hub(settings.console_push_coalesce_s)
        self.store = SnapshotStore(service.redis, settings.console_snapshot_key)
        self.upstream = Upstream(settings)
        self.source = "empty"
        """Where the state came from: `redis` (the snapshot), `services` (rebuilt), `empty`."""
        self.reconciled = False
        self._subscriptions: list[Subscription] = []
        self._dirty = asyncio.Event()
        self._account_due = asyncio.Event()

    # ----------------------------------------------------------------- start and stop
    async def start(self) -> None:
        """Serve the snapshot at once (when Redis has one), then follow the bus."""
        snapshot = await self.store.load()
        if snapshot is not None:
            self.state = LiveState.from_json(snapshot)
            self.source = "redis"
            log.info("state served from the redis snapshot", key=self.settings.console_snapshot_key)
        nc = self.service.broker.connection
        for subject in CONSOLE_FOLLOWS:
            sub = await nc.subscribe(subject, cb=self.on_message, pending_msgs_limit=PENDING_MSGS)
            self._subscriptions.append(sub)
        await nc.flush()

    async def stop(self) -> None:
        for sub in self._subscriptions:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        self.hub.close()
        if self._dirty.is_set():
            await self.store.save(self.view())
        await self.upstream.close()

    # ----------------------------------------------------------------- bus
    async def on_message(self, msg: Msg) -> None:
        """Decode, apply, fan out; a message that does not decode is counted and skipped."""
        started = time.perf_counter()
        model = model_for(msg.subject)
        if model is None:
            return
        try:
            event = model.model_validate_json(msg.data)
        except ValidationError as exc:
            metrics.REFUSED.inc()
            log.warning("undecodable event skipped", subject=msg.subject, error=str(exc)[:300])
            return
        self.push(self.state.apply(event))
        metrics.APPLY_SECONDS.observe(time.perf_counter() - started)

    def push(self, delta: Delta | None) -> None:
        if delta is None:
            return
        metrics.EVENTS.labels(delta["kind"]).inc()
        self.hub.publish(delta)
        self._dirty.set()
        if delta["kind"] in ACCOUNT_KINDS:
            self._account_due.set()

    # ----------------------------------------------------------------- what browsers get
    def view(self) -> dict[str, Any]:
        symbols = sorted({*self.settings.symbols, *self.state.signals, *self.state.positions})
        return {**self.state.to_json(), "symbols": symbols, "source": self.source}

    # ----------------------------------------------------------------- loops
    async def snapshot_loop(self) -> None:
        """Write the state to Redis at most every `console_snapshot_interval_s` while it changes."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self.store.save(self.view())
            await asyncio.sleep(self.settings.console_snapshot_interval_s)

    async def account_loop(self) -> None:
        """Read the account again after exec events, at most every `console_account_interval_s`."""
        while True:
            await self._account_due.wait()
            self._account_due.clear()
            account = await self.upstream.get("risk", "/v1/account")
            if account is not None:
                self.push(self.state.set_account(account))
            await asyncio.sleep(self.settings.console_account_interval_s)

    async def reconcile_loop(self) -> None:
        """Rebuild from the services' APIs until they answer (once); the snapshot is served meanwhile."""
        delay = RECONCILE_RETRY_S
        while True:
            if await self.reconcile():
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONCILE_MAX_RETRY_S)
        self.reconciled = True
        if self.source == "empty":
            self.source = "services"
        self.hub.publish({"kind": "snapshot", "data": self.view()})
        self._dirty.set()

    async def reconcile(self) -> bool:
        """One pass over every source; True when the essential ones (risk, telemetry) answered."""
        account, positions, trades, readiness, daily = await asyncio.gather(
            self.upstream.get("risk", "/v1/account"),
            self.upstream.get("risk", "/v1/positions"),
            self.upstream.get("risk", "/v1/trades", limit=1000),
            self.upstream.get("telemetry", "/v1/readiness"),
            self.upstream.get("rollup", "/v1/performance/daily"),
        )
        await self._last_messages(self.settings.symbols)
        if account is not None:
            self.state.set_account(account)
            if trades is not None:
                self.state.set_trades(_listed(trades, "trades"), str(account["initial_balance"]))
        if positions is not None:
            self.state.set_positions(_listed(positions, "positions"))
        if readiness is not None:
            self.state.set_readiness(readiness)
        if daily is not None:
            self.state.set_daily(_listed(daily, "days"))
        return account is not None and readiness is not None

    async def _last_messages(self, symbols: Iterable[str]) -> None:
        """The newest signal and decisions per symbol, from the streams (the APIs serve none)."""
        js = self.service.broker.connection.jetstream()
        wanted: list[tuple[str, str]] = []
        for symbol in symbols:
            wanted += [("SIGNALS", f"signals.{symbol}"), ("EXEC", f"exec.order.{symbol}")]
            wanted += [("EXEC", f"exec.rejected.{symbol}")]
        for stream, subject in wanted:
            try:
                raw = await js.get_last_msg(stream, subject)
            except (nats.js.errors.NotFoundError, nats.errors.Error) as exc:
                log.debug("no last message", subject=subject, error=repr(exc))
                continue
            model = model_for(subject)
            if model is None or raw.data is None:
                continue
            try:
                event = model.model_validate_json(raw.data)
            except ValidationError:
                metrics.REFUSED.inc()
                continue
            if not self._already_shown(event.event_id):
                self.state.apply(event)

    def _already_shown(self, event_id: str) -> bool:
        known = {d["event_id"] for d in self.state.decisions}
        known |= {s.get("event_id") for s in self.state.signals.values()}
        return event_id in known


def _listed(body: Any, key: str) -> list[dict[str, Any]]:
    """A list answer, bare or wrapped in an object (DESIGN.md allows both)."""
    if isinstance(body, dict):
        body = body.get(key, [])
    return [row for row in body if isinstance(row, dict)] if isinstance(body, list) else []
