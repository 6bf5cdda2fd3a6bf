"""Bucket arithmetic: UTC epoch alignment, weeks from Monday, Binance close times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebus.timeframes import (
    INTERVALS,
    bucket_start,
    close_time_ms,
    datetime_to_ms,
    interval_ms,
    iso_utc,
    minutes_in,
    ms_to_datetime,
    parse_interval,
)


def ms(*args: int) -> int:
    return datetime_to_ms(datetime(*args, tzinfo=UTC))


@pytest.mark.parametrize(
    ("ts", "interval", "start"),
    [
        (ms(2024, 2, 29, 23, 59), "1d", ms(2024, 2, 29)),  # leap day
        (ms(2024, 3, 1, 0, 0), "1d", ms(2024, 3, 1)),
        (ms(2024, 1, 31, 23, 59), "4h", ms(2024, 1, 31, 20)),  # month end
        (ms(2024, 1, 1, 0, 14), "15m", ms(2024, 1, 1, 0, 0)),
        (ms(2024, 1, 1, 0, 15), "15m", ms(2024, 1, 1, 0, 15)),
        (ms(2024, 1, 7, 23, 59), "1w", ms(2024, 1, 1)),  # Sunday belongs to the week of Monday 1 Jan
        (ms(2024, 1, 8, 0, 0), "1w", ms(2024, 1, 8)),  # Monday 00:00 opens a week
        (ms(1970, 1, 1), "1w", ms(1969, 12, 29)),  # the epoch was a Thursday
    ],
)
def test_bucket_start(ts: int, interval: str, start: int) -> None:
    assert bucket_start(ts, interval) == start


@given(st.integers(min_value=0, max_value=4_102_444_800_000), st.sampled_from(INTERVALS))
def test_bucket_contains_timestamp(ts: int, interval: str) -> None:
    start = bucket_start(ts, interval)
    assert start <= ts < start + interval_ms(interval)
    assert bucket_start(start, interval) == start
    if interval == "1w":
        assert ms_to_datetime(start).weekday() == 0


def test_close_time_and_minutes() -> None:
    assert close_time_ms(ms(2024, 1, 1), "1h") == ms(2024, 1, 1, 1) - 1
    assert [minutes_in(i) for i in INTERVALS] == [1, 5, 15, 60, 240, 1440, 10080]


def test_iso_and_round_trip() -> None:
    value = ms(2024, 5, 6, 7, 8)
    assert iso_utc(ms_to_datetime(value)) == "2024-05-06T07:08:00.000Z"
    assert datetime_to_ms(ms_to_datetime(value + 1)) == value + 1


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown interval '2m'"):
        parse_interval("2m")
    with pytest.raises(ValueError, match="naive"):
        datetime_to_ms(datetime(2024, 1, 1))


@given(st.datetimes(timezones=st.timezones()))
def test_datetime_to_ms_floors_to_the_millisecond(value: datetime) -> None:
    assert datetime_to_ms(value) == (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
