"""The risk service: consumers, HTTP API, readiness, outbox loop and the shutdown report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Query
from faststream.nats import DeliverPolicy

from tradebus import subjects
from tradebus.auth import bearer_token_guard
from tradebus.events import (
    BarEvent,
    BreakerEvent,
    FillEvent,
    Mode,
    OrderEvent,
    PositionEvent,
    QualityIssueEvent,
    ReadinessEvent,
    RejectionEvent,
    Severity,
    SignalEvent,
    TradeEvent,
)
from tradebus.logging import get_logger
from tradebus.service import CheckResult, Service
from tradebus.symbols import UNKNOWN_SYMBOL, optional_symbol
from tradebus_risk import metrics
from tradebus_risk.desk import Desk
from tradebus_risk.gate import ReadinessGate
from tradebus_risk.inbound import RiskBarEvent, RiskSignalEvent
from tradebus_risk.preflight import enforce
from tradebus_risk.restart_check import RestartReport, check_restored, closing_trades
from tradebus_risk.settings import RiskSettings
from tradebus_risk.views import account_view, amount, breaker_view, position_view, restart_view, trade_view

log = get_logger(__name__)

OUTBOX_INTERVAL_S = 1.0
REPLAY_SIGNALS_LINGER_S = 0.1
"""While signals are replayed they are gathered for this long between pulls: a replay's signals
trickle in as the signal service computes them, one transaction each small chunk; gathered, a
replay took ~2 s less of risk's CPU and ~2 s less of PostgreSQL's (of ~145 s in all). A chunk
with a live signal in it ends the lingering: live signals are decided as they arrive."""
OUTBOX_RETENTION = timedelta(days=1)
ORDER_HOLD_SHOWN_S = 5.0
"""Readiness names a stream holding the event-time order back this long (or half the hold when
that is shorter): less is the normal wait for the other symbols' bars of the same minute or the
signal service."""


def _traded(symbols: Sequence[str]) -> Callable[[str], bool] | None:
    """Telemetry checks every symbol it sees: the issues of symbols risk does not trade are
    dropped unread, not dead-lettered (they are not wrong, only not ours)."""
    if not symbols:
        return None
    traded = frozenset(symbols)
    return lambda subject: subject.rpartition(".")[2] in traded


def build_service(settings: RiskSettings) -> Service:
    """The risk service; raises `PreflightFailed` when the configuration has critical findings."""
    limits = settings.limits()
    warnings = enforce(limits, settings.symbols)
    service = Service("risk", settings, migrations="tradebus_risk.migrations")
    desk = Desk(
        lambda: service.pool,
        lambda: service.publisher,
        limits,
        held_bars=lambda: service.held("bars-1m"),
        symbols=settings.symbols,
        hold_s=settings.risk_watermark_hold_s,
        breaker_limits=settings.breaker_limits(),
        gate=(gate := ReadinessGate(settings.risk_readiness_degraded, settings.risk_readiness_max_age_s)),
    )
    restart = RestartReport()

    start_at = DeliverPolicy(settings.risk_deliver_policy)

    @service.consumer(
        name="signals",
        stream="SIGNALS",
        subject="signals.*",
        model=RiskSignalEvent,
        documented_as=SignalEvent,
        batch_size=500,
        deliver_policy=start_at,
        linger_s=REPLAY_SIGNALS_LINGER_S,
        linger_while=lambda events: all(e.mode is Mode.REPLAY for e in events),
    )
    async def on_signals(events: list[RiskSignalEvent]) -> None:
        """The contract's `SignalEvent`, decoded only as far as risk reads it (`tradebus_risk.inbound`)."""
        await desk.receive_signals(events)

    @service.consumer(
        name="bars-1m",
        stream="BARS",
        subject="bars.1m.*",
        model=RiskBarEvent,
        documented_as=BarEvent,
        batch_size=settings.risk_bars_batch,
        deliver_policy=start_at,
        holds=True,
    )
    async def on_bars(events: list[RiskBarEvent]) -> set[str]:
        """The contract's `BarEvent`, decoded only as far as risk reads it (`tradebus_risk.inbound`);
        bars the merge holds back stay unacked until applied (see `tradebus_risk.desk`)."""
        return await desk.receive_bars(events)

    service.publishes("exec.order.*", OrderEvent, "Paper market orders (entries and exits)")
    service.publishes("exec.fill.*", FillEvent, "Paper fills, with slippage and fees")
    service.publishes("exec.position.*", PositionEvent, "Every change of a position (open, close)")
    service.publishes("exec.trade.*", TradeEvent, "Closed round trips")
    service.publishes("exec.rejected.*", RejectionEvent, "Signals refused by a risk rule, with the reason")
    service.publishes(
        "exec.breaker.*", BreakerEvent, "Circuit breaker trips, half-opens and resets (a symbol, or ACCOUNT)"
    )
    # Readiness is wall-clock state: only the newest report matters, from the last one on.
    readiness_from = DeliverPolicy.LAST if start_at is DeliverPolicy.ALL else DeliverPolicy.NEW

    @service.consumer(
        name="readiness",
        stream="TELEMETRY",
        subject=subjects.READINESS,
        model=ReadinessEvent,
        batch_size=50,
        deliver_policy=readiness_from,
    )
    async def on_readiness(events: list[ReadinessEvent]) -> None:
        """Telemetry's readiness: while BLOCKED, no new live position (`tradebus_risk.gate`)."""
        for event in events:
            gate.observe(event.data)
        metrics.READINESS_GATE.set(1 if gate.blocks_entries() else 0)

    @service.consumer(
        name="quality",
        stream="TELEMETRY",
        subject="telemetry.quality.*",
        model=QualityIssueEvent,
        accept=_traded(settings.symbols),
        batch_size=100,
        deliver_policy=DeliverPolicy.NEW,  # a stale feed is live state: an old issue is no news
    )
    async def on_quality(events: list[QualityIssueEvent]) -> None:
        """Critical live issues a bar cannot show itself (a stale feed) trip the symbol's breaker;
        the others risk judges on the bars themselves, in event time (`tradebus_risk.breaker`)."""
        for event in events:
            issue = event.data
            if event.mode is Mode.LIVE and issue.severity is Severity.CRITICAL and issue.kind == "stale":
                detail = f"telemetry: {issue.kind} {issue.interval}: {issue.detail}"
                await desk.trip_live(issue.symbol, "data_quality", detail, issue.detected_at)

    @service.on_startup
    async def load() -> None:
        for finding in warnings:
            log.warning("risk preflight", setting=finding.setting, finding=finding.message)
        await desk.repo.ensure_account()
        restart.checks = await check_restored(desk.repo, service.broker.connection.jetstream())
        await desk.start()  # the shared consumer rewinds what a previous instance left unacked
        metrics.set_breakers(await desk.breakers())

    @service.background
    async def send_outbox() -> None:
        """Sends what a failed publish left behind (the hot path sends right after each batch) and
        acks applied bars a race kept from being acked."""
        while True:
            await asyncio.sleep(OUTBOX_INTERVAL_S)
            await desk.expire_holds()
            await desk.release_applied()
            await desk.flush()
            await desk.repo.prune_sent(OUTBOX_RETENTION)

    @service.on_shutdown
    async def final_report() -> None:
        sent = await desk.flush()
        book = await desk.repo.load_book(service.pool)
        stats = await desk.repo.trade_stats()
        trades, wins = stats["trades"], stats["wins"]
        per_asset = {
            asset: {
                "equity": amount(book.equity(asset)),
                "cash": amount(a.cash),
                "net_pnl": amount(book.equity(asset) - a.initial_balance),
                "closed_net_pnl": amount(stats["net_pnl"].get(asset, Decimal(0))),
            }
            for asset, a in sorted(book.accounts.items())
        }
        log.info(
            "final performance report",
            balances=per_asset,
            trades=trades,
            wins=wins,
            win_rate=f"{wins / trades:.2%}" if trades else "n/a",
            open_positions=len(book.holdings),
            outbox_sent_on_shutdown=sent,
        )

    @service.check("trading", critical=False)
    async def trading() -> CheckResult:
        status = await desk.status()
        if status.frozen:
            return CheckResult(False, "trading frozen by a quote asset's drawdown limit (POST /v1/risk/reset)")
        if status.open_positions >= limits.max_open_positions:
            return CheckResult(False, f"max open positions reached ({status.open_positions})")
        return CheckResult(True, f"{status.open_positions} of {limits.max_open_positions} positions open")

    @service.check("breaker", critical=False)
    async def breaker() -> CheckResult:
        """Not ok while a circuit breaker is open or half-open (telemetry's `risk_breaker` point)."""
        opened = [s for s in (await desk.breakers()).values() if s.state != "closed"]
        if opened:
            return CheckResult(False, "; ".join(f"{s.scope} {s.state} ({s.trigger}: {s.detail})" for s in opened))
        return CheckResult(True, "every circuit breaker closed")

    @service.check("readiness_gate", critical=False)
    async def readiness_gate() -> CheckResult:
        blocked = gate.blocks_entries()
        metrics.READINESS_GATE.set(1 if blocked else 0)
        return CheckResult(blocked is None, blocked or "live entries allowed (" + gate.current()[1] + ")")

    @service.check("event_order", critical=False)
    async def event_order() -> CheckResult:
        """Degraded while a stream holds the global event-time order back longer than a moment, or
        was excused for its silence (`merge`): the detail names them."""
        holding, excused = desk.order_status()
        shown_after = min(ORDER_HOLD_SHOWN_S, settings.risk_watermark_hold_s / 2)
        parts = [
            f"waiting {seconds:.0f} s for {symbol} {kind}s (excused after {settings.risk_watermark_hold_s:g} s)"
            for (symbol, kind), seconds in sorted(holding.items())
            if seconds >= shown_after
        ]
        parts += [f"{symbol} {kind}s excused (silent): late ones are applied on arrival" for symbol, kind in excused]
        if parts:
            return CheckResult(False, "; ".join(parts))
        return CheckResult(True, "every stream in step")

    @service.router.get("/v1/account", tags=["risk"])
    async def get_account() -> dict[str, Any]:
        return account_view(await desk.repo.load_book(service.pool))

    @service.router.get("/v1/positions", tags=["risk"], responses=UNKNOWN_SYMBOL)
    async def get_positions(symbol: str | None = Depends(optional_symbol(settings.symbols))) -> list[dict[str, Any]]:
        book = await desk.repo.load_book(service.pool)
        held = sorted(book.holdings.values(), key=lambda h: h.symbol)
        return [restart.flag(position_view(book, h)) for h in held if symbol is None or h.symbol == symbol]

    @service.router.get("/v1/risk/restart-check", tags=["risk"])
    async def get_restart_check() -> list[dict[str, Any]]:
        """The position safety check made at start, with the trade that closed each position since."""
        closed = await closing_trades(service.pool, restart.checks)
        return [
            restart_view(check, closed.get(check.position_id), limits.quote_of(check.symbol))
            for check in restart.checks
        ]

    @service.router.get("/v1/risk/breakers", tags=["risk"])
    async def get_breakers() -> list[dict[str, Any]]:
        return [breaker_view(s) for s in (await desk.breakers()).values()]

    @service.router.post(
        "/v1/risk/breaker/reset", tags=["risk"], dependencies=[Depends(bearer_token_guard(settings.tradebus_api_token))]
    )
    async def reset_breaker(scope: str | None = None) -> dict[str, Any]:
        """Close a circuit breaker (`scope`: a symbol or ACCOUNT), or every open one (audited, published)."""
        return {"closed": await desk.reset_breakers(scope.upper() if scope else None)}

    @service.router.get("/v1/trades", tags=["risk"], responses=UNKNOWN_SYMBOL)
    async def get_trades(
        symbol: str | None = Depends(optional_symbol(settings.symbols)),
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return [trade_view(r, limits.quote_of(r["symbol"])) for r in await desk.repo.trades(symbol, limit)]

    @service.router.post(
        "/v1/risk/reset", tags=["risk"], dependencies=[Depends(bearer_token_guard(settings.tradebus_api_token))]
    )
    async def reset() -> dict[str, Any]:
        """Clear the drawdown freeze and restart the peak at the current equity (audited)."""
        return account_view(await desk.reset())

    return service
