"""The ingest service: publishes 1m bars on `bars.1m.<SYMBOL>` from the configured data source.

`auto` (the default), `ws` and `rest` run on Binance (see `sources` and `binance.feed`); AUTO
falls back to the synthetic feed while Binance cannot be reached at all. `replay` and
`synthetic` are offline data by choice. The non-critical `feed` readiness check is false on
offline data (telemetry turns that into DEGRADED) and says why.
"""

from __future__ import annotations

from typing import Any

from tradebus.events import BarEvent, BarSource
from tradebus.service import CheckResult, Service
from tradebus.timeframes import iso_utc
from tradebus_ingest.clock import Clock, WallClock
from tradebus_ingest.feed import FeedStatus, ReplayFeed, SyntheticFeed
from tradebus_ingest.replay import kline_files
from tradebus_ingest.repository import IngestRepository
from tradebus_ingest.settings import IngestSettings
from tradebus_ingest.sources import run_exchange_feed


def _feed_status(settings: IngestSettings) -> FeedStatus:
    """Which source runs and why it is offline data; refuses replay settings that cannot work."""
    if settings.ingest_source == "replay":
        if not settings.ingest_replay_files:
            raise ValueError("INGEST_SOURCE=replay needs INGEST_REPLAY_FILES (comma-separated paths or globs)")
        files = kline_files(settings.ingest_replay_files)  # fails now, not in the loop, on a bad path or name
        reason = f"offline data source: replay of {len(files)} kline file(s) (INGEST_SOURCE=replay)"
        return FeedStatus("replay", BarSource.REPLAY, tuple(sorted({f.symbol for f in files})), reason)
    if settings.ingest_source == "synthetic":
        reason = "offline data source: synthetic feed (INGEST_SOURCE=synthetic)"
        return FeedStatus("synthetic", BarSource.SYNTHETIC, settings.symbols, reason)
    if settings.ingest_source == "auto":
        reason = "offline data source: synthetic feed (asking Binance)"
        return FeedStatus("auto", BarSource.SYNTHETIC, settings.symbols, reason)
    return FeedStatus(settings.ingest_source, BarSource.BINANCE_WS, settings.symbols, None)


def build_service(settings: IngestSettings, *, clock: Clock | None = None) -> Service:
    """The ingest service; `clock` is for tests that step through minutes without waiting."""
    service = Service("ingest", settings, migrations="tradebus_ingest.migrations")
    status = _feed_status(settings)
    clock = clock or WallClock()
    service.publishes(
        "bars.1m.*", BarEvent, "Closed 1m bars, one per symbol and minute (offline history as mode=replay)"
    )

    @service.background
    async def feed() -> None:
        repository = IngestRepository(service.pool)
        if settings.ingest_source == "replay":
            await ReplayFeed(
                files=settings.ingest_replay_files,
                speed=settings.ingest_replay_speed,
                publisher=service.publisher,
                repository=repository,
                status=status,
            ).run()
        elif settings.ingest_source == "synthetic":
            await SyntheticFeed(
                symbols=status.symbols,
                seed=settings.ingest_seed,
                backfill_days=settings.backfill_days,
                live=settings.ingest_live,
                clock=clock,
                publisher=service.publisher,
                repository=repository,
                status=status,
            ).run()
        else:
            await run_exchange_feed(
                settings=settings, clock=clock, publisher=service.publisher, repository=repository, status=status
            )

    @service.check("feed", critical=False)
    async def feed_check() -> CheckResult:
        return CheckResult(*status.health())

    @service.router.get("/v1/feed", tags=["feed"])
    async def feed_info() -> dict[str, Any]:
        """The source in use, what it is doing, and each series' checkpoint and stored bar count."""
        checkpoints = await IngestRepository(service.pool).checkpoints()
        ok, detail = status.health()
        body: dict[str, Any] = {
            "requested": status.requested,
            "source": status.source.value,
            "offline": status.offline_reason is not None,
            "ok": ok,
            "detail": detail,
            "state": status.state.value,
            "live": settings.ingest_live and status.source is not BarSource.REPLAY,
            "symbols": list(status.symbols),
            "published_since_start": dict(sorted(status.published.items())),
            "checkpoints": [
                {
                    "source": c.source,
                    "symbol": c.symbol,
                    "open_time": iso_utc(c.open_time),
                    "last_close": str(c.last_close),
                    "bars_stored": c.bars_stored,
                }
                for c in checkpoints
            ],
        }
        if status.replay is not None:
            body["replay"] = {
                "files": status.replay.files,
                "bars_published": status.replay.bars_published,
                "bars_skipped": status.replay.bars_skipped,
                "rows_rejected": dict(status.replay.rejected),
            }
        return body

    return service
