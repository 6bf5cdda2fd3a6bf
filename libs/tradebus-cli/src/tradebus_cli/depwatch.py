"""Supervision of the embedded NATS and PostgreSQL the supervisor started.

A dependency that exits or is killed is started again with the services' backoff policy, on the
same port and data directory with the same options (`EmbeddedNats.restart`,
`EmbeddedPostgres.restart`), so the services reconnect to the URL they already have. A frozen
(SIGSTOPped) server still runs and is left alone. Every restart is logged and counted, and the
new pid goes into `state.json` so `tradebus down` stops the current process, not a dead one.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from typing import Protocol

from tradebus.logging import get_logger
from tradebus_cli.restart import RestartPolicy

log = get_logger("tradebus.supervisor")


class Restartable(Protocol):
    """What `EmbeddedNats` and `EmbeddedPostgres` offer for supervision."""

    @property
    def pid(self) -> int | None: ...

    def running(self) -> bool: ...

    def restart(self) -> None: ...


@dataclass
class WatchedDependency:
    """One embedded dependency and its restart bookkeeping (like a service's `Child`)."""

    name: str
    server: Restartable
    policy: RestartPolicy
    started_at: float = 0.0
    delay_s: float | None = None
    restart_at: float | None = None
    """When the next start is due; None while it runs."""
    restarts: int = 0

    def __post_init__(self) -> None:
        self.started_at = time.monotonic()

    def tick(self, now: float) -> bool:
        """Notice an exit, or start it again when due; True when its pid or restart count changed."""
        if self.restart_at is None:
            if self.server.running():
                return False
            self._schedule(now, now - self.started_at, "embedded dependency exited, restarting")
            return False
        if now < self.restart_at:
            return False
        try:
            self.server.restart()
        except (RuntimeError, OSError, subprocess.SubprocessError, AssertionError) as exc:
            # a failed start (the port or shared memory still held, pg_ctl timing out, embedded-
            # postgres' own assertion) is retried with a longer delay, never fatal
            self._schedule(time.monotonic(), 0.0, "embedded dependency did not start again", error=str(exc)[-500:])
            return False
        self.restart_at = None
        self.started_at = time.monotonic()
        self.restarts += 1
        log.info("embedded dependency restarted", dependency=self.name, pid=self.server.pid, restarts=self.restarts)
        return True

    def _schedule(self, now: float, uptime: float, event: str, **fields: object) -> None:
        self.delay_s = self.policy.next_delay(self.delay_s, uptime)
        self.restart_at = now + self.delay_s
        log.warning(event, dependency=self.name, uptime_s=round(uptime, 1), restart_in_s=self.delay_s, **fields)
