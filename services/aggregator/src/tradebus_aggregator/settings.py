"""The aggregator's own environment variables."""

from __future__ import annotations

from pydantic import Field

from tradebus.settings import Settings


class AggregatorSettings(Settings):
    """`AGGREGATOR_BATCH_SIZE`: 1m bars handled per consumed batch (one COPY, one pipelined publish)."""

    aggregator_batch_size: int = Field(default=1000, ge=1, le=10_000)
