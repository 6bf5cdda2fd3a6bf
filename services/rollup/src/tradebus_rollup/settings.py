"""The rollup service's own environment variables (beside the shared ones)."""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr, field_validator

from tradebus.settings import Settings


class RollupSettings(Settings):
    """`ROLLUP_EOD_TIME` / `ROLLUP_TIMEZONE` place the end-of-day job and the day boundary."""

    rollup_eod_time: time = time(0, 5)
    rollup_timezone: str = "UTC"
    rollup_batch_size: int = 500
    tradebus_api_token: SecretStr | None = None

    @field_validator("rollup_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as UTC or Europe/Paris)") from exc
        return value

    @field_validator("rollup_eod_time")
    @classmethod
    def _naive_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("ROLLUP_EOD_TIME is a wall-clock time in ROLLUP_TIMEZONE; give it without an offset")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.rollup_timezone)
