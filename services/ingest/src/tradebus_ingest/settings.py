"""The ingest service's environment: which data source, how much history, how fast to replay, and
where and how patiently to talk to Binance (every timing is a setting so tests can shrink it)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from tradebus.settings import Settings
from tradebus.subjects import DUPLICATE_WINDOW_S
from tradebus_ingest.replay import parse_speed

SourceChoice = Literal["auto", "ws", "rest", "replay", "synthetic"]


class IngestSettings(Settings):
    """`INGEST_*`, `BACKFILL_DAYS` and `BINANCE_*`; `SYMBOLS` and the connection URLs come from `Settings`."""

    ingest_source: SourceChoice = "auto"
    backfill_days: float = Field(default=30.0, ge=0, description="History published on a fresh start (days of 1m).")
    ingest_seed: int = 42
    ingest_replay_files: Annotated[tuple[str, ...], NoDecode] = ()
    ingest_replay_speed: float | None = Field(
        default=None, gt=0, description="Multiple of real time; None (`max`) replays as fast as possible."
    )
    ingest_live: bool = True

    binance_rest_url: str = "https://api.binance.com"
    binance_ws_url: str = "wss://stream.binance.com:9443"
    binance_timeout_s: float = Field(default=10.0, gt=0, description="REST request and WebSocket opening timeout.")
    binance_backoff_s: float = Field(default=5.0, gt=0, description="First reconnect delay; doubles per failure.")
    binance_backoff_max_s: float = Field(default=60.0, gt=0, description="Cap of the reconnect delay.")
    binance_ws_max_age_s: float = Field(
        default=23 * 3600 + 50 * 60, gt=0, description="Planned reconnect before Binance cuts a connection at 24 h."
    )
    binance_ws_silence_s: float = Field(
        default=20.0, gt=0, description="AUTO: a WebSocket silent (or down) this long hands over to REST polling."
    )
    binance_close_grace_s: float = Field(
        default=2.0, ge=0, description="Wait after a minute closes before fetching it by REST (clock skew)."
    )
    binance_rest_weight_limit: int = Field(default=6000, gt=0, description="Request weight per minute per IP.")
    binance_retry_max_s: float = Field(
        default=60.0, ge=0, description="Longest Retry-After waited in line; longer means REST is unavailable."
    )
    binance_switch_delay_s: float = Field(
        default=DUPLICATE_WINDOW_S,
        ge=0,
        description="AUTO: pause between offline data and Binance so JetStream's duplicate window cannot drop "
        "a real minute that shares its id with a synthetic one.",
    )

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

    @field_validator("binance_rest_url", "binance_ws_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
