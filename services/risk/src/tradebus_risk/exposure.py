"""Exposure limits (R-4.8): what one quote asset and one group of correlated symbols may hold.

Exposure is the value of the open longs (at their marks) plus the pending entries (at their
signal's planned entry), per quote asset, as a fraction of that asset's equity. A symbol's group
is itself and every symbol of the same quote asset whose return correlation with it is at or
above the threshold (symbols of different quote assets are never summed: their amounts are in
different currencies).

The correlation is Pearson's over the returns of closes sampled in event time: the close of
each 1m bar ending on a multiple of the step (5 minutes by default) is a sample, the last
`window + 1` are kept per symbol, and a return is taken between two samples one step apart.
Two symbols are compared on the returns both have, up to the decision point only (a bar that
closes later never counts), and count as uncorrelated with fewer than `MIN_SHARED` of them: the
same bars give the same groups whatever the delivery. Computed in binary floating point in a
fixed order: deterministic, and a threshold test needs no exact decimal.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

Sample = tuple[datetime, Decimal]
"""(close time, close) of a 1m bar ending on a step."""
MIN_SHARED: Final = 10


def is_sample(close_time: datetime, step_m: int) -> bool:
    """Whether a 1m bar closing at `close_time` ends on a step (UTC minutes since midnight)."""
    return close_time.second == 0 and (close_time.hour * 60 + close_time.minute) % step_m == 0


def returns(samples: Sequence[Sample], step: timedelta, until: datetime) -> dict[datetime, float]:
    """The return ending at each sample (closing at or before `until`) whose previous sample is one step before."""
    out: dict[datetime, float] = {}
    for (t0, c0), (t1, c1) in itertools.pairwise(samples):
        if t1 > until:
            break
        if t1 - t0 == step and c0 > 0:
            out[t1] = float(c1 / c0) - 1.0
    return out


def correlation(a: dict[datetime, float], b: dict[datetime, float]) -> float | None:
    """Pearson's r over the times both have; None with fewer than `MIN_SHARED` or no variance."""
    shared = sorted(a.keys() & b.keys())
    if len(shared) < MIN_SHARED:
        return None
    xs, ys = [a[t] for t in shared], [b[t] for t in shared]
    n = len(shared)
    mx, my = math.fsum(xs) / n, math.fsum(ys) / n
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    syy = math.fsum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    return sxy / math.sqrt(sxx * syy)
