"""What a benchmark reports: a figure next to a baseline measured in the same run, as a ratio.

`tradebus bench` (the CLI) owns the run: it starts a private NATS, picks a PostgreSQL, and calls
every `bench(env)` it knows — services keep theirs in `tradebus_<service>/bench.py` — then
prints the table, writes `bench.json` and `docs/BENCHMARKS.md`. Speed is never asserted in a
test; a smoke run (`env.smoke`) only proves each benchmark still runs.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure and its same-run baseline."""

    key: str
    label: str
    value: float
    baseline: float
    baseline_label: str
    unit: str
    higher_is_better: bool = True
    goal: str = ""
    notes: dict[str, float | str] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """value / baseline when higher is better, baseline / value when lower is: > 1 beats the baseline."""
        if self.higher_is_better:
            return self.value / self.baseline if self.baseline else float("inf")
        return self.baseline / self.value if self.value else float("inf")


@dataclass
class BenchEnv:
    """Where a benchmark may run: a private NATS, a PostgreSQL that can create databases, a scratch dir."""

    nats_url: str
    admin_dsn: str
    work_dir: Path
    smoke: bool = False
    _databases: list[str] = field(default_factory=list)

    async def fresh_database(self) -> str:
        """A new empty database (dropped by `drop_databases`)."""
        name = f"tradebus_bench_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self._databases.append(name)
        parts = urlsplit(self.admin_dsn)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))

    async def drop_databases(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            for name in self._databases:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        self._databases.clear()


Bench = Callable[[BenchEnv], Awaitable[list[Figure]]]


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """`with stopwatch() as elapsed: …; elapsed()` — seconds on the monotonic clock."""
    start = time.perf_counter()
    end: float | None = None

    def elapsed() -> float:
        return (end if end is not None else time.perf_counter()) - start

    try:
        yield elapsed
    finally:
        end = time.perf_counter()


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; samples need not be sorted."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(0, min(len(ordered), rank) - 1)]
