"""Bar quality checks: OHLC consistency, volume, gaps, conflicting duplicates and price jumps.

State is kept per (symbol, interval, mode) and is small: the newest bar's open time and close,
and a bounded memory of recent bars' content for spotting duplicates. After a restart the first
bar of each series sets the baseline again. Checking is split from committing so that a batch
whose issues could not be stored or published is checked again, with the same result, on retry.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal

from tradebus.events import Bar, Mode, Severity, critical_price_problem
from tradebus.timeframes import interval_ms, ms_to_datetime
from tradebus.timeframes import iso_utc as _iso

IssueKind = Literal["stale", "ohlc", "gap", "duplicate", "price_jump", "volume"]

DUPLICATE_MEMORY: Final = 1_440
"""Bars per series whose content is remembered to tell a conflicting duplicate from a redelivery."""

SeriesKey = tuple[str, str, Mode]
Fingerprint = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem with one bar."""

    kind: IssueKind
    severity: Severity
    detail: str


@dataclass(slots=True)
class SeriesState:
    """What the checks remember about one series of bars.

    A batch is checked on a `draft`, which shares the committed memory of recent bars and
    collects its own in `added`; `settle` folds them in once the batch is handled. So checking
    costs nothing per batch for the memory, and a failed batch leaves it untouched.
    """

    last_open_ms: int
    last_close: Decimal
    seen: OrderedDict[int, tuple[int, Fingerprint]] = field(default_factory=OrderedDict)
    added: dict[int, tuple[int, Fingerprint]] = field(default_factory=dict)

    def draft(self) -> SeriesState:
        return SeriesState(self.last_open_ms, self.last_close, self.seen)

    def recall(self, open_ms: int) -> tuple[int, Fingerprint] | None:
        """The revision and content last remembered for the bar opening at `open_ms`."""
        found = self.added.get(open_ms)
        return found if found is not None else self.seen.get(open_ms)

    def remember(self, bar: Bar) -> None:
        self.added.pop(bar.open_ms, None)  # newest last, as in `seen`
        self.added[bar.open_ms] = (bar.revision, fingerprint(bar))

    def settle(self) -> SeriesState:
        """Fold the batch's memories into the shared one, keeping the newest `DUPLICATE_MEMORY`."""
        seen = self.seen
        for open_ms, memory in self.added.items():
            seen[open_ms] = memory
            seen.move_to_end(open_ms)
        while len(seen) > DUPLICATE_MEMORY:
            seen.popitem(last=False)
        self.added = {}
        return self


def fingerprint(bar: Bar) -> Fingerprint:
    """The content that must not change between two deliveries of the same bar revision."""
    return (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.quote_volume, bar.trades, bar.complete)


def check_prices(bar: Bar) -> list[Finding]:
    """OHLC consistency and non-negative volumes: problems of the bar alone."""
    found: list[Finding] = []
    problem = critical_price_problem(bar.open, bar.high, bar.low, bar.close)
    if problem is not None:
        found.append(Finding("ohlc", Severity.CRITICAL, problem))
    for name, amount in (("volume", bar.volume), ("quote_volume", bar.quote_volume)):
        if amount < 0:
            found.append(Finding("volume", Severity.CRITICAL, f"negative {name} {amount}"))
    return found


def check_sequence(state: SeriesState, bar: Bar, jump_ratio: Decimal) -> list[Finding]:
    """Gap, duplicate and jump checks against the series' previous bars (does not change `state`)."""
    seen = state.recall(bar.open_ms)
    if seen is not None:
        revision, content = seen
        if bar.revision == revision and fingerprint(bar) != content:
            detail = f"bar at {_iso(bar.open_time)} seen again with other content"
            return [Finding("duplicate", Severity.WARNING, detail)]
        return []
    if bar.open_ms <= state.last_open_ms:
        return []  # a late bar filling in history: the gap it closes was reported when it opened
    found: list[Finding] = []
    step = interval_ms(bar.interval)
    missing = (bar.open_ms - state.last_open_ms) // step - 1
    if missing > 0:
        first = ms_to_datetime(state.last_open_ms + step)
        found.append(Finding("gap", Severity.WARNING, f"{missing} missing {bar.interval} bar(s) from {_iso(first)}"))
    if state.last_close > 0:
        move = bar.close / state.last_close - 1
        if abs(move) > jump_ratio:
            found.append(
                Finding(
                    "price_jump",
                    Severity.WARNING,
                    f"close {bar.close} moved {move * 100:.2f}% from previous close {state.last_close}",
                )
            )
    return found


def advance(state: SeriesState | None, bar: Bar) -> SeriesState:
    """The series state after `bar` (mutates and returns `state`, or starts a new one)."""
    if state is None:
        state = SeriesState(bar.open_ms, bar.close)
    elif bar.open_ms > state.last_open_ms:
        state.last_open_ms, state.last_close = bar.open_ms, bar.close
    elif bar.open_ms == state.last_open_ms:
        seen = state.recall(bar.open_ms)
        if seen is None or bar.revision >= seen[0]:
            state.last_close = bar.close
    seen = state.recall(bar.open_ms)
    if seen is None or bar.revision >= seen[0]:
        state.remember(bar)
    return state


@dataclass(slots=True)
class CheckedBatch:
    """Findings per bar of a batch, and the series states to keep once they are stored."""

    findings: list[list[Finding]]
    states: dict[SeriesKey, SeriesState]


class QualityChecker:
    """Checks bars series by series; `commit` keeps the states of a batch that was handled."""

    def __init__(self, jump_ratio: Decimal) -> None:
        self._jump_ratio = jump_ratio
        self._states: dict[SeriesKey, SeriesState] = {}

    def check(self, bars: list[tuple[Bar, Mode]]) -> CheckedBatch:
        """Findings for each bar in order, without changing what the checker remembers."""
        states: dict[SeriesKey, SeriesState] = {}
        findings: list[list[Finding]] = []
        for bar, mode in bars:
            key: SeriesKey = (bar.symbol, bar.interval, mode)
            state = states.get(key)
            if state is None and key in self._states:
                state = states[key] = self._states[key].draft()
            found = check_prices(bar)
            if state is not None:
                found += check_sequence(state, bar, self._jump_ratio)
            states[key] = advance(state, bar)
            findings.append(found)
        return CheckedBatch(findings, states)

    def commit(self, batch: CheckedBatch) -> None:
        self._states.update((key, state.settle()) for key, state in batch.states.items())
