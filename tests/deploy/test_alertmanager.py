"""Alertmanager's config: compose's render.sh and local mode's renderer fill the one template the
same way, and Alertmanager accepts the result."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tradebus_cli import monitoring

from .conftest import DEPLOY, load_yaml

SETTINGS = [
    {},
    {"ALERT_WEBHOOK_URL": "http://hooks.example:8080/all"},
    {"ALERT_WEBHOOK_URL": "http://a:1/x", "ALERT_WEBHOOK_CRITICAL_URL": "http://b:2/y", "ALERT_GROUP_WAIT": "5s"},
]


def _rendered_by_compose(tmp_path: Path, settings: dict[str, str]) -> str:
    out = tmp_path / "alertmanager.yml"
    env = {
        "PATH": os.environ["PATH"],
        "ALERTMANAGER_BIN": "true",
        "ALERTMANAGER_TEMPLATE": str(DEPLOY / "alertmanager" / "alertmanager.yml.tmpl"),
        "ALERTMANAGER_CONFIG": str(out),
        **settings,
    }
    subprocess.run(["sh", str(DEPLOY / "alertmanager" / "render.sh")], env=env, check=True, timeout=10)
    return out.read_text()


@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "one webhook", "two webhooks"])
def test_compose_and_local_mode_render_the_same_config(tmp_path: Path, settings: dict[str, str]) -> None:
    assert _rendered_by_compose(tmp_path, settings) == monitoring.alertmanager_config(settings)


def test_critical_alerts_take_their_own_webhook_and_both_get_resolutions(tmp_path: Path) -> None:
    config = load_yaml(Path(_write(tmp_path, monitoring.alertmanager_config(SETTINGS[2]))))
    (critical,) = config["route"]["routes"]
    assert critical["matchers"] == ['severity="critical"'] and critical["receiver"] == "critical"
    hooks = {r["name"]: r["webhook_configs"][0] for r in config["receivers"]}
    assert hooks["critical"] == {"url": "http://b:2/y", "send_resolved": True}
    assert hooks["warning"] == {"url": "http://a:1/x", "send_resolved": True}
    assert config["route"]["group_wait"] == "5s"


@pytest.mark.skipif(shutil.which("amtool") is None, reason=f"amtool not installed ({monitoring.INSTALL_HINT})")
@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "one webhook", "two webhooks"])
def test_amtool_accepts_the_rendered_config(tmp_path: Path, settings: dict[str, str]) -> None:
    path = _write(tmp_path, monitoring.alertmanager_config(settings))
    result = subprocess.run(["amtool", "check-config", path], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_alertmanager_on_the_rendered_template(compose: dict[str, object]) -> None:
    service = compose["services"]["alertmanager"]  # type: ignore[index]
    assert service["entrypoint"] == ["/bin/sh", "/etc/alertmanager/render.sh"]
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in service["volumes"]
    assert set(service["environment"]) >= set(monitoring.ALERT_DEFAULTS)


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rendered.yml"
    path.write_text(text)
    return str(path)
