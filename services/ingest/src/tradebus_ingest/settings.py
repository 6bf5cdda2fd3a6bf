"""The ingest service's environment: which data source, how much history, how fast to replay."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from tradebus.settings import Settings
from tradebus_ingest.replay import parse_speed

SourceChoice = Literal["auto", "synthetic", "replay"]


class IngestSettings(Settings):
    """`INGEST_*` and `BACKFILL_DAYS`; `SYMBOLS` and the connection URLs come from `Settings`."""

    ingest_source: SourceChoice = "auto"
    backfill_days: float = Field(default=30.0, ge=0, description="History published on a fresh start (days of 1m).")
    ingest_seed: int = 42
    ingest_replay_files: Annotated[tuple[str, ...], NoDecode] = ()
    ingest_replay_speed: float | None = Field(
        default=None, gt=0, description="Multiple of real time; None (`max`) replays as fast as possible."
    )
    ingest_live: bool = True

    @field_validator("ingest_replay_files", mode="before")
    @classmethod
    def _split_files(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("ingest_replay_speed", mode="before")
    @classmethod
    def _parse_speed(cls, value: object) -> object:
        return parse_speed(value) if isinstance(value, str) else value
