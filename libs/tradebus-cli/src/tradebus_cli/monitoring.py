"""Prometheus and Alertmanager for the local stack, when their binaries are installed.

Compose runs both from images with the files under deploy/; local mode runs the same files here:
the scrape jobs of deploy/prometheus/prometheus.yml with local targets (plus the supervisor's
restart counters), its alert rules, and deploy/alertmanager/alertmanager.yml.tmpl filled from
the environment exactly as compose's render.sh fills it. The supervisor runs them as children
(restarted like the services); `TRADEBUS_MONITORING=0` leaves them out. Settings:
TRADEBUS_PROMETHEUS_PORT / TRADEBUS_ALERTMANAGER_PORT (9090 / 9093),
TRADEBUS_PROMETHEUS_INTERVAL_S (scrape and evaluation, 15), TRADEBUS_PROMETHEUS_RULES (a rules
file instead of deploy/prometheus/alerts.yml) and the ALERT_* variables of the template.
"""

from __future__ import annotations

import shutil
import socket
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from tradebus_cli.rundir import repo_root

ALERT_DEFAULTS: Final[Mapping[str, str]] = {
    "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/no-webhook-configured",
    "ALERT_GROUP_WAIT": "30s",
    "ALERT_GROUP_INTERVAL": "5m",
    "ALERT_REPEAT_INTERVAL": "4h",
}
"""Alertmanager's settings when the environment has none (render.sh has the same)."""

PROMETHEUS_BINARIES: Final = ("prometheus",)
ALERTMANAGER_BINARIES: Final = ("prometheus-alertmanager", "alertmanager")  # Debian's name, upstream's
SUPERVISOR_JOB: Final = "supervisor"
INSTALL_HINT: Final = "Debian/Ubuntu: apt-get install prometheus prometheus-alertmanager"


def deploy_dir() -> Path:
    return repo_root() / "deploy"


def alertmanager_config(env: Mapping[str, str]) -> str:
    """deploy/alertmanager/alertmanager.yml.tmpl filled from `env` (defaults: ALERT_DEFAULTS)."""
    values = {**ALERT_DEFAULTS, **{k: v for k, v in env.items() if k in ALERT_DEFAULTS and v}}
    values["ALERT_WEBHOOK_CRITICAL_URL"] = env.get("ALERT_WEBHOOK_CRITICAL_URL") or values["ALERT_WEBHOOK_URL"]
    template = (deploy_dir() / "alertmanager" / "alertmanager.yml.tmpl").read_text()
    return string.Template(template).substitute(values)


def prometheus_config(
    targets: Mapping[str, str], *, alertmanager: str | None, rules: Path, interval_s: float = 15.0
) -> str:
    """deploy/prometheus/prometheus.yml for local targets: each job keeps its name with the
    `host:port` given in `targets`; a job without one (the Redis exporter) is left out."""
    config: dict[str, Any] = yaml.safe_load((deploy_dir() / "prometheus" / "prometheus.yml").read_text())
    interval = f"{interval_s:g}s"
    config["global"] |= {"scrape_interval": interval, "evaluation_interval": interval}
    config["global"]["scrape_timeout"] = f"{min(interval_s, 10.0):g}s"
    config["rule_files"] = [str(rules)]
    known = {job["job_name"]: job for job in config["scrape_configs"]}
    config["scrape_configs"] = [
        known.get(name, {"job_name": name}) | {"static_configs": [{"targets": [target]}]}
        for name, target in targets.items()
    ]
    config.pop("alerting", None)
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return str(yaml.safe_dump(config, sort_keys=False))


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def find_binary(names: tuple[str, ...]) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


@dataclass(frozen=True, slots=True)
class Monitor:
    """A monitoring process the supervisor runs: what to run, and where it answers."""

    name: str
    command: tuple[str, ...]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def listening(self) -> Monitor:
        """With its listen address (both take `--web.listen-address`)."""
        return Monitor(self.name, (*self.command, f"--web.listen-address=127.0.0.1:{self.port}"), self.port)


@dataclass(frozen=True, slots=True)
class MonitorPlan:
    """What local monitoring will run, and why any part of it will not."""

    monitors: tuple[Monitor, ...]
    skipped: Mapping[str, str]


def plan(
    env: Mapping[str, str], workdir: Path, targets: Mapping[str, str], *, prometheus_port: int, alertmanager_port: int
) -> MonitorPlan:
    """Write the configs into `workdir` and say what to run: Prometheus and Alertmanager when
    their binaries exist and their ports are free (Prometheus sends alerts to this Alertmanager
    only when it runs)."""
    if env.get("TRADEBUS_MONITORING", "1") == "0":
        return MonitorPlan((), {"prometheus": "TRADEBUS_MONITORING=0", "alertmanager": "TRADEBUS_MONITORING=0"})
    skipped: dict[str, str] = {}
    alertmanager = _runnable("alertmanager", ALERTMANAGER_BINARIES, alertmanager_port, skipped)
    prometheus = _runnable("prometheus", PROMETHEUS_BINARIES, prometheus_port, skipped)
    monitors: list[Monitor] = []
    if alertmanager:
        config = _write(workdir / "alertmanager" / "alertmanager.yml", alertmanager_config(env))
        options = (f"--storage.path={config.parent / 'data'}", "--cluster.listen-address=")
        monitors.append(Monitor("alertmanager", (alertmanager, f"--config.file={config}", *options), alertmanager_port))
    if prometheus:
        routed = f"127.0.0.1:{alertmanager_port}" if alertmanager else None
        rules = Path(env.get("TRADEBUS_PROMETHEUS_RULES") or deploy_dir() / "prometheus" / "alerts.yml")
        interval_s = float(env.get("TRADEBUS_PROMETHEUS_INTERVAL_S") or 15.0)
        text = prometheus_config(targets, alertmanager=routed, rules=rules, interval_s=interval_s)
        config = _write(workdir / "prometheus" / "prometheus.yml", text)
        options = (f"--storage.tsdb.path={config.parent / 'data'}", "--storage.tsdb.retention.time=15d")
        monitors.append(Monitor("prometheus", (prometheus, f"--config.file={config}", *options), prometheus_port))
    return MonitorPlan(tuple(m.listening() for m in monitors), skipped)


def _runnable(name: str, binaries: tuple[str, ...], port: int, skipped: dict[str, str]) -> str | None:
    """The binary to run `name` with, or None with the reason in `skipped`."""
    binary = find_binary(binaries)
    if binary is None:
        skipped[name] = f"not installed ({INSTALL_HINT})"
    elif not port_free(port):
        skipped[name] = f"port {port} is in use"
        return None
    return binary


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
