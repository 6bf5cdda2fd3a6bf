"""Timeframe arithmetic on UTC epoch milliseconds.

Buckets are aligned to the UTC epoch, except weeks, which start on Monday 00:00 UTC as
Binance's do (the epoch, 1970-01-01, was a Thursday). UTC has no DST, so every interval has a
fixed length and all arithmetic is integer arithmetic on milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final, Literal, get_args

Interval = Literal["1m", "5m", "15m", "1h", "4h", "1d", "1w"]

INTERVALS: Final[tuple[Interval, ...]] = get_args(Interval)
HIGHER_INTERVALS: Final[tuple[Interval, ...]] = INTERVALS[1:]

MINUTE_MS: Final = 60_000
_INTERVAL_MS: Final[dict[str, int]] = {
    "1m": MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "1d": 1_440 * MINUTE_MS,
    "1w": 10_080 * MINUTE_MS,
}
# Monday 1970-01-05 00:00 UTC: the first week boundary after the epoch.
_WEEK_OFFSET_MS: Final = 4 * 1_440 * MINUTE_MS
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def parse_interval(value: str) -> Interval:
    """Return `value` as an Interval, or raise ValueError naming the valid ones."""
    if value not in _INTERVAL_MS:
        raise ValueError(f"unknown interval {value!r}; expected one of {', '.join(INTERVALS)}")
    return value  # type: ignore[return-value]


def interval_ms(interval: str) -> int:
    """Length of one bar of `interval` in milliseconds."""
    return _INTERVAL_MS[parse_interval(interval)]


def minutes_in(interval: str) -> int:
    """How many 1m bars make one bar of `interval`."""
    return interval_ms(interval) // MINUTE_MS


def bucket_start(ts_ms: int, interval: str) -> int:
    """Open time (ms) of the `interval` bucket that contains `ts_ms`."""
    length = interval_ms(interval)
    offset = _WEEK_OFFSET_MS if interval == "1w" else 0
    return ts_ms - ((ts_ms - offset) % length)


def close_time_ms(open_ms: int, interval: str) -> int:
    """Binance's close time: the last millisecond inside the bar."""
    return open_ms + interval_ms(interval) - 1


def last_minute_of(open_ms: int, interval: str) -> int:
    """Open time of the final 1m bar inside the bucket starting at `open_ms`."""
    return open_ms + interval_ms(interval) - MINUTE_MS


def ms_to_datetime(ms: int) -> datetime:
    """UTC datetime for epoch milliseconds."""
    return _EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(value: datetime) -> int:
    """Epoch milliseconds for an aware datetime (naive datetimes are refused)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: tradebus works in UTC only")
    since = value - _EPOCH  # normalised: 0 <= seconds < 86400 and 0 <= microseconds < 10**6, so this floors
    return since.days * 86_400_000 + since.seconds * 1000 + since.microseconds // 1000


def iso_utc(value: datetime) -> str:
    """ISO-8601 in UTC with a `Z` suffix and millisecond precision."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    """Current wall-clock time in epoch milliseconds."""
    return datetime_to_ms(datetime.now(tz=UTC))
