"""Alerts reach someone and panels tell the truth: `tradebus up` runs Prometheus and Alertmanager
(Debian's binaries) with the project's rules and routing; after a scripted scenario (three poison
messages, a price jump, a kill -9) every dashboard and alert expression evaluates on the live
Prometheus and the panels count what happened; the killed service and a hung one reach a
webhook, by severity, and the hung one's resolution follows.

The rules are deploy/prometheus/alerts.yml with every `for:` cut to 2 s (their timing is proven
by promtool's unit tests in tests/deploy); what this proves is the path: scrape, rule,
Alertmanager's route by severity, the webhook, and the resolution.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
import pytest
import yaml
from stack_cli import cli, missing_services

from tradebus.embedded import free_port
from tradebus.events import BarEvent, BarSource, Mode, make_bar
from tradebus.settings import PROCESSES, SERVICES
from tradebus.testing import wait_for
from tradebus.timeframes import now_ms
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


RAW_DLQ = "sum by (service) (tradebus_dlq_messages_total) > 0"
VARIABLES = {"$service": ".*", "$symbol": ".*", "$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s"}


def _expression(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def _dashboards() -> dict[str, Any]:
    folder = monitoring.deploy_dir() / "grafana" / "dashboards"
    return {path.name: orjson.loads(path.read_bytes()) for path in sorted(folder.glob("*.json"))}


def _panel_expr(dashboard: str, *fragments: str) -> str:
    """The one target expression of `dashboard` holding every fragment, variables filled in."""
    (found,) = [
        t["expr"]
        for panel in _dashboards()[dashboard]["panels"]
        for t in panel.get("targets", [])
        if all(f in t["expr"] for f in fragments)
    ]
    return _expression(found)


def _every_expression() -> list[str]:
    panels = [t["expr"] for b in _dashboards().values() for p in b["panels"] for t in p.get("targets", [])]
    rules = yaml.safe_load((monitoring.deploy_dir() / "prometheus" / "alerts.yml").read_text())
    return [_expression(e) for e in panels] + [r["expr"] for g in rules["groups"] for r in g["rules"]]


async def _scenario(nats_url: str) -> None:
    """Three poison messages on bars.1m (each of its three consumers dead-letters them) and two
    replayed minutes of a month ago whose close jumps 50 % (one price_jump issue)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for i in range(3):
            await js.publish("bars.1m.BTCUSDT", b"{poison", headers={"Nats-Msg-Id": f"poison-{i}"})
        start = (now_ms() - 30 * 86_400_000) // 60_000 * 60_000
        closes = (Decimal(100), Decimal(150))
        for minute, close in enumerate(closes):
            bar = make_bar(
                "BTCUSDT", "1m", start + minute * 60_000, close, close, close, close, Decimal(1), close, 1,
                BarSource.REPLAY,
            )  # fmt: skip
            event = BarEvent.of(bar, source="ingest", mode=Mode.REPLAY)
            await js.publish(
                "bars.1m.BTCUSDT", event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.event_id}
            )
    finally:
        await nc.close()


def _quick_rules(path: Path) -> Path:
    rules = (monitoring.deploy_dir() / "prometheus" / "alerts.yml").read_text()
    path.write_text(re.sub(r"(?m)^(\s+for:) \S+$", r"\1 2s", rules))
    return path


async def test_panels_count_what_happened_and_alerts_reach_the_webhook_by_severity(
    tmp_path: Path, private_nats_url: str, database_url: str
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
            "NATS_URL": private_nats_url,  # a bus of its own: no other test's dead letters
            "DATABASE_URL": database_url,
            "SYMBOLS": "BTCUSDT",
            "BACKFILL_DAYS": "0",  # ingest publishes nothing: the scenario's bars are the only ones
            "INGEST_LIVE": "0",
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
                scraped_since = time.time()  # every counter has been scraped at 0 from here on
                await _scenario(private_nats_url)

                async def query(expr: str) -> list[dict[str, Any]]:
                    answer = (await client.get(f"{prometheus}/api/v1/query", params={"query": expr})).json()
                    assert answer["status"] == "success", (expr, answer)
                    return answer["data"]["result"]  # type: ignore[no-any-return]

                dlq_stat = _panel_expr("system-overview.json", "or vector(0)", "tradebus_dlq")

                async def dead_letters_scraped() -> bool:
                    return float((await query(dlq_stat))[0]["value"][1]) >= 9

                await wait_for(dead_letters_scraped, timeout=60, what="the 9 dead letters scraped")

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

                # The panels count what happened. Prometheus holds the exact counts; a panel's
                # increase() over a stack younger than its range extrapolates the few seconds it
                # lacks (here up to ~20 %: 3 read 3.45 once), whole-event counts being rounded per
                # series. A counter born at 1 with its first event read 0 on these panels (issue 17).
                for expr in _every_expression():
                    await query(expr)  # each one evaluates on the live server
                exact = {r["metric"]["service"]: float(r["value"][1]) for r in await query(RAW_DLQ)}
                assert exact == {"aggregator": 3, "risk": 3, "telemetry": 3}
                window = f"[{int(time.time() - scraped_since) + 3}s]"  # from a scrape of every counter at 0
                for service in SERVICES:  # the DLQ stat with the $service variable set to each
                    per_service = dlq_stat.replace('service=~".*"', f'service=~"{service}"').replace("[5m]", window)
                    (count,) = await query(per_service)
                    assert (3 <= float(count["value"][1]) <= 4) if service in exact else float(count["value"][1]) == 0
                (total,) = await query(dlq_stat.replace("[5m]", window))
                assert 9 <= float(total["value"][1]) <= 11, total
                quality = _panel_expr("data-quality-readiness.json", "or vector(0)", "quality").replace("[5m]", window)
                (issues,) = await query(quality)
                assert float(issues["value"][1]) == 1  # the price jump
                (restarts,) = await query('increase(tradebus_supervisor_restarts_total{service="rollup"}[5m])')
                assert round(float(restarts["value"][1])) == 1

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
