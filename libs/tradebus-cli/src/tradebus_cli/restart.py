"""When to restart a crashed service: exponential backoff that forgets after a healthy run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """1 s doubling up to 30 s; a process that stayed up `reset_after_s` starts again at 1 s."""

    initial_s: float = 1.0
    max_s: float = 30.0
    reset_after_s: float = 60.0

    def next_delay(self, previous_delay_s: float | None, uptime_s: float) -> float:
        """Seconds to wait before restarting a process that just exited after `uptime_s`.

        `previous_delay_s` is the delay used before its last start (None if it never crashed).
        """
        if previous_delay_s is None or uptime_s >= self.reset_after_s:
            return self.initial_s
        return min(previous_delay_s * 2, self.max_s)
