"""The console as a real process (`python -m tradebus_console`) for the tests that kill or double it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from tradebus.embedded import free_port
from tradebus.testing import wait_for


class ConsoleProcess:
    def __init__(self, logs: Path, env: Mapping[str, str], name: str = "console") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = logs / f"{name}.log"
        self.env = {**os.environ, **env, "TRADEBUS_CONSOLE_PORT": str(self.port), "LOG_LEVEL": "INFO"}
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tradebus_console"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    async def start(self) -> ConsoleProcess:
        self.spawn()

        async def live() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(f"{self.url}/health/live")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(live, timeout=30, what=f"console on {self.port} live")
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, so only what was already in Redis survives."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("the console did not stop within 30 s of SIGTERM") from None


def dead_url() -> str:
    """An HTTP URL nobody answers on (a service the test does not run)."""
    return f"http://127.0.0.1:{free_port()}"
