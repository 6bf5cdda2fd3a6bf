"""Every service's own benchmark: `tradebus_<service>.bench.bench(env)`, where a service has one.

A module is only found here and imported when its benchmark runs, so a service whose bench (or
code) does not import fails as that one benchmark, reported, while the others still run.
"""

from __future__ import annotations

import importlib
import importlib.util

from tradebus.bench import Bench, BenchEnv, Figure
from tradebus.settings import PROCESSES


def _has_module(name: str) -> bool:
    parent = name.rsplit(".", 1)[0]
    return importlib.util.find_spec(parent) is not None and importlib.util.find_spec(name) is not None


def _lazy(module_name: str) -> Bench:
    async def run(env: BenchEnv) -> list[Figure]:
        bench: Bench = importlib.import_module(module_name).bench
        return await bench(env)

    return run


def service_benches() -> dict[str, Bench]:
    """service name → its `bench`, for the services whose package has a `bench` module."""
    return {s: _lazy(f"tradebus_{s}.bench") for s in PROCESSES if _has_module(f"tradebus_{s}.bench")}
