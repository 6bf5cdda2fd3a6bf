"""Reconnect delays: 5, 10, 20, 40, then 60 s (doubling from a base, capped), each plus jitter."""

from __future__ import annotations

import random
from typing import Final

JITTER: Final = 0.2
"""Up to 20 % added at random, so that many clients cut off together do not come back in step."""


def backoff_delay(failures: int, *, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after `failures` consecutive failed attempts (0 before the first retry)."""
    delay: float = min(cap_s, base_s * 2.0 ** min(failures, 32))
    jitter: float = (rng or random).uniform(0.0, JITTER)
    return delay * (1 + jitter)
