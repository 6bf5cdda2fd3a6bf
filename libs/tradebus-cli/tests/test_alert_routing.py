"""Alerts reach someone: `tradebus up` runs Prometheus and Alertmanager (Debian's binaries) with
the project's rules and routing; a killed service and a hung one reach a webhook, by severity,
and the hung one's resolution follows.

The rules are deploy/prometheus/alerts.yml with every `for:` cut to 2 s (their timing is proven
by promtool's unit tests in tests/deploy); what this proves is the path: scrape, rule,
Alertmanager's route by severity, the webhook, and the resolution.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from stack_cli import cli, missing_services

from tradebus.embedded import free_port
from tradebus.settings import PROCESSES, SERVICES
from tradebus.testing import wait_for
from tradebus_cli import monitoring
from tradebus_cli.rundir import RunDir

INSTALLED = all(map(monitoring.find_binary, (monitoring.PROMETHEUS_BINARIES, monitoring.ALERTMANAGER_BINARIES)))
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not INSTALLED, reason=f"Prometheus and Alertmanager not installed ({monitoring.INSTALL_HINT})"),
]


class Webhook:
    """An HTTP server that keeps every Alertmanager notification it is sent, by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.port = free_port()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        path = head.split(" ", 2)[1]
        length = int(re.search(r"(?im)^content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        self.received.append((path, orjson.loads(await reader.readexactly(length))))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    def alerts(self, path: str, name: str, status: str) -> list[dict[str, Any]]:
        """The alerts named `name` with `status` that reached `path`."""
        return [
            alert
            for got, body in self.received
            if got == path
            for alert in body["alerts"]
            if alert["labels"]["alertname"] == name and alert["status"] == status
        ]

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[Webhook]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()


def _quick_rules(path: Path) -> Path:
    rules = (monitoring.deploy_dir() / "prometheus" / "alerts.yml").read_text()
    path.write_text(re.sub(r"(?m)^(\s+for:) \S+$", r"\1 2s", rules))
    return path


async def test_a_killed_and_a_hung_service_reach_the_webhook_by_severity_and_resolve(
    tmp_path: Path, nats_url: str, database_url: str
) -> None:
    if missing := missing_services():
        pytest.skip(f"service packages not importable yet: {', '.join(missing)}")
    run = RunDir(tmp_path / "run")
    ports = {name: free_port() for name in ("PROMETHEUS", "ALERTMANAGER", "SUPERVISOR")}
    async with Webhook().serving() as hook:
        env = {
            **os.environ,
            "TRADEBUS_RUN_DIR": str(run.path),
            "TRADEBUS_LOCAL": "1",
            "TRADEBUS_WATCHDOG": "0",  # the hang below must stay a hang (the watchdog: test_stack_e2e)
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            "SYMBOLS": "BTCUSDT",
            "BACKFILL_DAYS": "0.05",
            "HEARTBEAT_INTERVAL_S": "1",
            "COLUMNS": "200",
            **{f"TRADEBUS_{s.upper()}_PORT": str(free_port()) for s in PROCESSES},
            **{f"TRADEBUS_{name}_PORT": str(port) for name, port in ports.items()},
            "TRADEBUS_PROMETHEUS_INTERVAL_S": "1",
            "TRADEBUS_PROMETHEUS_RULES": str(_quick_rules(tmp_path / "alerts.yml")),
            "ALERT_WEBHOOK_URL": hook.url("/warning"),
            "ALERT_WEBHOOK_CRITICAL_URL": hook.url("/critical"),
            "ALERT_GROUP_WAIT": "1s",
            "ALERT_GROUP_INTERVAL": "1s",
        }
        prometheus = f"http://127.0.0.1:{ports['PROMETHEUS']}"
        try:
            code, output = await cli("up", env=env)
            assert code == 0, output
            assert prometheus in output and f"http://127.0.0.1:{ports['ALERTMANAGER']}" in output, output
            state = run.read_state()
            assert state is not None and set(state.monitors) == {"prometheus", "alertmanager"}
            async with httpx.AsyncClient(timeout=5) as client:

                async def scraped_up() -> bool:
                    answer = (await client.get(f"{prometheus}/api/v1/query", params={"query": "up == 1"})).json()
                    jobs = {r["metric"]["job"] for r in answer["data"]["result"]}
                    return jobs >= {*SERVICES, monitoring.SUPERVISOR_JOB}

                await wait_for(scraped_up, timeout=60, what="Prometheus scraping every service and the supervisor")

                # kill -9: the supervisor heals it within seconds, and the restart still alerts
                victim = state.services["rollup"].process
                assert victim is not None
                os.kill(victim.pid, signal.SIGKILL)

                async def restart_alerted() -> bool:
                    alerts = hook.alerts("/warning", "ServiceRestarted", "firing")
                    return any(a["labels"]["service"] == "rollup" for a in alerts)

                await wait_for(restart_alerted, timeout=60, what="ServiceRestarted for rollup at the warning webhook")
                counters = (await client.get(f"http://127.0.0.1:{ports['SUPERVISOR']}/metrics")).text
                assert 'tradebus_supervisor_restarts_total{service="rollup"} 1.0' in counters
                assert 'tradebus_supervisor_restarts_total{service="signal"} 0.0' in counters

                # a hang: scrapes fail, the critical route gets ServiceDown, then its resolution
                hung = state.services["signal"].process
                assert hung is not None
                os.kill(hung.pid, signal.SIGSTOP)
                try:

                    async def down_alerted() -> bool:
                        alerts = hook.alerts("/critical", "ServiceDown", "firing")
                        return any(a["labels"]["job"] == "signal" for a in alerts)

                    await wait_for(down_alerted, timeout=60, what="ServiceDown for signal at the critical webhook")
                finally:
                    os.kill(hung.pid, signal.SIGCONT)

                async def resolved() -> bool:
                    alerts = hook.alerts("/critical", "ServiceDown", "resolved")
                    return any(a["labels"]["job"] == "signal" for a in alerts)

                await wait_for(resolved, timeout=60, what="ServiceDown for signal resolved at the critical webhook")
                assert not [a for a in hook.alerts("/warning", "ServiceDown", "firing")], "critical went to warning"
        finally:
            code, output = await cli("down", env=env, timeout=60)
        assert code == 0, output
        assert "monitor prometheus" in output and "monitor alertmanager" in output, output
