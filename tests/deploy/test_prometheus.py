"""Prometheus: scrape config for the compose stack and the alert rules (promtool when installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tradebus.settings import DEFAULT_PORTS, PROCESSES

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
REQUIRED_ALERTS = {
    "ServiceDown",
    "ServiceNotReady",
    "FeedStale",
    "DrawdownNearLimit",
    "DLQGrowing",
    "ConsumerLagHigh",
    "ReadinessBlocked",
    "TradingFrozen",
    "CircuitBreakerOpen",
}
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian: apt-get install -y prometheus)",
)


def targets(config: dict[str, Any]) -> dict[str, list[str]]:
    return {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }


def test_every_service_is_scraped_by_its_compose_name_every_15_seconds(prometheus_config: dict[str, Any]) -> None:
    assert prometheus_config["global"]["scrape_interval"] == "15s"
    jobs = targets(prometheus_config)
    for name in PROCESSES:
        assert jobs[name] == [f"{name}:{DEFAULT_PORTS[name]}"]


def test_redis_is_scraped_through_the_exporter_service(
    prometheus_config: dict[str, Any], compose: dict[str, Any]
) -> None:
    assert targets(prometheus_config)["redis"] == ["redis-exporter:9121"]
    assert compose["services"]["redis-exporter"]["image"].startswith("oliver006/redis_exporter:")


def test_rule_files_are_next_to_the_config(prometheus_config: dict[str, Any]) -> None:
    for name in prometheus_config["rule_files"]:
        assert (PROMETHEUS_DIR / name).is_file()


def test_the_required_alerts_exist_with_a_severity_and_a_summary(alert_rules: list[dict[str, Any]]) -> None:
    assert {rule["alert"] for rule in alert_rules} >= REQUIRED_ALERTS
    for rule in alert_rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_feed_stale_warns_at_5_and_is_critical_at_10_minutes(alert_rules: list[dict[str, Any]]) -> None:
    feed = {rule["labels"]["severity"]: rule["expr"] for rule in alert_rules if rule["alert"] == "FeedStale"}
    assert "> 300" in feed["warning"]
    assert "> 600" in feed["critical"]


def promtool(*args: str) -> None:
    result = subprocess.run(
        ["promtool", *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_config() -> None:
    promtool("check", "config", "prometheus.yml")


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    promtool("check", "rules", "alerts.yml")


@needs_promtool
def test_alert_rules_pass_their_unit_tests() -> None:
    promtool("test", "rules", "alerts_test.yml")
