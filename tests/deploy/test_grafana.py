"""Grafana: provisioning and the four dashboards (valid, in sync with their generator)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
EXPECTED = {"system-overview.json", "trading-performance.json", "data-quality-readiness.json", "infrastructure.json"}
DATASOURCE_UID = "prometheus"


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def test_the_prometheus_datasource_has_the_fixed_uid_and_compose_address(read_yaml: Callable[[Path], Any]) -> None:
    (source,) = read_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_the_dashboard_provider_reads_the_directory_compose_mounts(
    compose: dict[str, Any], read_yaml: Callable[[Path], Any]
) -> None:
    (provider,) = read_yaml(GRAFANA / "provisioning" / "dashboards" / "tradebus.yml")["providers"]
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_the_four_dashboards_are_there_with_unique_uids(dashboards: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == EXPECTED
    uids = [board["uid"] for board in dashboards.values()]
    assert len(set(uids)) == len(uids)
    assert all(len(uid) <= 40 for uid in uids)


def test_dashboards_are_valid_for_current_grafana(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, board in dashboards.items():
        assert board["schemaVersion"] >= 38, name
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        assert panels(board), name
        for panel in panels(board):
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            refs = [t["refId"] for t in panel["targets"]]
            assert len(set(refs)) == len(refs)
            for query in panel["targets"]:
                assert query["datasource"]["uid"] == DATASOURCE_UID
                assert query["expr"].strip()
        for variable in board["templating"]["list"]:
            assert variable["datasource"]["uid"] == DATASOURCE_UID


def test_panels_fit_the_grid_without_overlapping(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, board in dashboards.items():
        boxes = [(p["title"], p["gridPos"]) for p in board["panels"]]
        for title, box in boxes:
            assert box["x"] >= 0 and box["w"] > 0 and box["x"] + box["w"] <= 24, (name, title)
        for (a, p), (b, q) in combinations(boxes, 2):
            apart = (
                p["x"] + p["w"] <= q["x"]
                or q["x"] + q["w"] <= p["x"]
                or p["y"] + p["h"] <= q["y"]
                or q["y"] + q["h"] <= p["y"]
            )
            assert apart, f"{name}: {a!r} overlaps {b!r}"


def test_committed_dashboards_match_their_generator() -> None:
    result = subprocess.run(
        [sys.executable, str(GRAFANA / "generate_dashboards.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_drawdown_panels_show_the_equity_drawdown_only(dashboards: dict[str, dict[str, Any]]) -> None:
    """'Drawdown' means the fall of equity from its peak (a fraction): rollup's P&L give-back is
    another figure with another name, and never shares a drawdown panel."""
    found = [
        (p["title"], [t["expr"] for t in p["targets"]])
        for board in dashboards.values()
        for p in panels(board)
        if "drawdown" in p["title"].lower()
    ]
    assert found, "no drawdown panel"
    for title, expressions in found:
        assert title == "Equity drawdown" and expressions == ["tradebus_risk_drawdown_ratio"], (title, expressions)
