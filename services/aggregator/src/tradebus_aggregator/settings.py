"""The aggregator's own environment variables."""

from __future__ import annotations

from pydantic import Field

from tradebus.settings import Settings


class AggregatorSettings(Settings):
    """`AGGREGATOR_BATCH_SIZE`: 1m bars handled per consumed batch at most (one COPY, one pipelined
    publish). A replay's backlog fills it: 2,000 instead of 1,000 took the aggregator's CPU in a
    30-day × 10-symbol replay from 19.2–20.1 to 17.4–17.5 s (longer runs per symbol for the
    vectorised path, fewer COPYs); 5,000 gained nothing more and held 30 MB more."""

    aggregator_batch_size: int = Field(default=2000, ge=1, le=10_000)
