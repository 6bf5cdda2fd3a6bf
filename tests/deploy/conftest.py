"""Fixtures for the deployment-asset tests: the repository's deploy files, parsed once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def load_yaml(path: Path) -> Any:
    """Parse a YAML file (skips the test when PyYAML, a dev dependency, is missing)."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the deploy YAML (pip install pyyaml)")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return load_yaml(REPO / "docker-compose.yml")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def prometheus_config() -> dict[str, Any]:
    return load_yaml(DEPLOY / "prometheus" / "prometheus.yml")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    }


@pytest.fixture(scope="session")
def read_yaml() -> Callable[[Path], Any]:
    """`load_yaml` for tests (test modules cannot import conftest under --import-mode=importlib)."""
    return load_yaml
