"""The supervisor's watchdog (R-5.3): a service whose process runs but does not live — it hangs,
or a consumer of it is stalled with a backlog (`/health/live` answers 503) — is killed, and the
supervisor's restart path brings it back; its durables resume where it was.

A crash restarts on its own; this is for what does not crash. The probes run in threads, all at
once, so a hung service costs the supervisor's loop one probe timeout, not one per service. A
service is probed only after `grace_s` from its start (startup, migrations and a replay's first
minutes), acted on after `misses` failed probes in a row, and restarted at most `max_per_hour`
times an hour: beyond that a restart is not healing, and the watchdog says so once and waits.

Settings: TRADEBUS_WATCHDOG=0 (off), TRADEBUS_WATCHDOG_INTERVAL_S (5), TRADEBUS_WATCHDOG_MISSES
(3), TRADEBUS_WATCHDOG_GRACE_S (60), TRADEBUS_WATCHDOG_MAX_PER_HOUR (4).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

import httpx

PROBE_TIMEOUT_S: Final = 2.0
HOUR_S: Final = 3600.0


@dataclass(frozen=True, slots=True)
class WatchdogPolicy:
    enabled: bool = True
    interval_s: float = 5.0
    misses: int = 3
    grace_s: float = 60.0
    max_per_hour: int = 4

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WatchdogPolicy:
        default = cls()
        return cls(
            enabled=env.get("TRADEBUS_WATCHDOG", "1") != "0",
            interval_s=float(env.get("TRADEBUS_WATCHDOG_INTERVAL_S") or default.interval_s),
            misses=int(env.get("TRADEBUS_WATCHDOG_MISSES") or default.misses),
            grace_s=float(env.get("TRADEBUS_WATCHDOG_GRACE_S") or default.grace_s),
            max_per_hour=int(env.get("TRADEBUS_WATCHDOG_MAX_PER_HOUR") or default.max_per_hour),
        )


@dataclass(slots=True)
class Liveness:
    """One service's probe record."""

    misses: int = 0
    last_failure: str = ""
    actions: deque[float] = field(default_factory=deque)
    """Monotonic times of the restarts it ordered in the last hour."""
    gave_up: bool = False


def probe(url: str) -> str | None:
    """What went wrong with `GET {url}/health/live`: None when it answered 200 in time, or when
    nothing listens yet (a service still starting, or waiting for its database, opens its port
    late; a hung one still accepts connections and then never answers)."""
    try:
        response = httpx.get(f"{url}/health/live", timeout=PROBE_TIMEOUT_S)
    except httpx.ConnectError:
        return None
    except httpx.HTTPError as exc:
        return f"no answer within {PROBE_TIMEOUT_S:g} s ({exc.__class__.__name__})"
    if response.status_code == 200:
        return None
    try:
        detail = str(response.json().get("detail") or response.json().get("status"))
    except ValueError:
        detail = response.text[:200]
    return f"HTTP {response.status_code}: {detail}"


class Watchdog:
    """Probes the services due, all at once; says which to restart, and why."""

    def __init__(self, policy: WatchdogPolicy, names: list[str]) -> None:
        self.policy = policy
        self.records = {name: Liveness() for name in names}
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(names)), thread_name_prefix="watchdog")
        self._next_round = 0.0

    def due(self, now: float) -> bool:
        return self.policy.enabled and now >= self._next_round

    def round(self, now: float, running: Mapping[str, tuple[str, float]]) -> dict[str, str]:
        """Probe every running service past its grace (`running`: name -> (url, started at, monotonic));
        the services to restart now, each with the reason."""
        self._next_round = now + self.policy.interval_s
        probed = {name: url for name, (url, started) in running.items() if now - started >= self.policy.grace_s}
        outcomes = dict(zip(probed, self._pool.map(probe, probed.values()), strict=True))
        verdicts: dict[str, str] = {}
        for name, failure in outcomes.items():
            record = self.records[name]
            if failure is None:
                record.misses, record.gave_up = 0, False
                continue
            record.misses += 1
            record.last_failure = failure
            if record.misses < self.policy.misses:
                continue
            while record.actions and now - record.actions[0] > HOUR_S:
                record.actions.popleft()
            if len(record.actions) >= self.policy.max_per_hour:
                if not record.gave_up:
                    record.gave_up = True
                    verdicts[name] = ""  # over the limit: reported, not restarted
                continue
            record.actions.append(now)
            record.misses = 0
            verdicts[name] = f"/health/live failed {self.policy.misses} times in a row ({failure})"
        return verdicts

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
