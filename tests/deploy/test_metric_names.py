"""Every metric an alert or a dashboard queries exists: documented in docs/ARCHITECTURE.md or
defined in `tradebus.metrics` (exact names and label names), or from a standard exporter family."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from tradebus import metrics as shared_metrics

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"
# Families from Prometheus itself, prometheus_client's default process collector, redis_exporter,
# postgres-exporter and prometheus-nats-exporter.
STANDARD = re.compile(r"^(up|process_[a-z_]+|redis_[a-z_]+|pg_[a-z_]+|gnatsd_[a-z_]+)$")
TARGET_LABELS = {"job", "instance"}
SERIES_SUFFIXES = ("_bucket", "_sum", "_count", "_created")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}

_STRING = re.compile(r'"(?:\\.|[^"\\])*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_IDENT = re.compile(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?")
_LABEL_VALUES = re.compile(r"^label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)$")


def documented_metrics() -> dict[str, set[str]]:
    """Metric name -> label names, from the metrics section of ARCHITECTURE.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text[text.index("## Metrics") :]
    section = section[: section.index("\n## ", 1)]
    found: dict[str, set[str]] = {}
    for name, labels in re.findall(r"`((?:tradebus|websocket)_[a-z_]+)(?:\{([a-z_,]*)\})?`", section):
        found.setdefault(name, set()).update(filter(None, labels.split(",")))
    return found


def code_metrics() -> dict[str, set[str]]:
    """Exposed name -> label names of the metrics `tradebus.metrics` defines."""
    found: dict[str, set[str]] = {}
    for metric in vars(shared_metrics).values():
        if isinstance(metric, MetricWrapperBase):
            name = metric._name + ("_total" if metric._type == "counter" else "")
            found[name] = set(metric._labelnames)
    return found


KNOWN = {**documented_metrics(), **code_metrics()}


def base_name(series: str) -> str | None:
    """The known metric a series name belongs to (histogram and counter series included)."""
    if series in KNOWN:
        return series
    for suffix in SERIES_SUFFIXES:
        if series.endswith(suffix) and series.removesuffix(suffix) in KNOWN:
            return series.removesuffix(suffix)
    return None


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    bare = _STRING.sub('""', expr)
    bare = re.sub(r"\{[^}]*\}", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = _GROUPING.sub(" ", bare)
    return {name for name, call in _IDENT.findall(bare) if not call and name not in KEYWORDS}


def selector_labels(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names matched in its `{...}`) for every selector in the expression."""
    return [(name, set(_MATCHER.findall(_STRING.sub('""', body)))) for name, body in _SELECTOR.findall(expr)]


def dashboard_queries(dashboards: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    queries = []
    for file, board in dashboards.items():
        for panel in board["panels"]:
            queries += [(f"{file}: {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
    return queries


def variable_queries(dashboards: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    found = []
    for file, board in dashboards.items():
        for variable in board["templating"]["list"]:
            match = _LABEL_VALUES.match(variable["query"]["query"])
            assert match, f"{file}: variable {variable['name']} is not label_values(metric, label)"
            found.append((f"{file}: ${variable['name']}", match.group(1), match.group(2)))
    return found


def check(where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"{where}: no metric in {expr!r}"
    for name in names:
        assert STANDARD.match(name) or base_name(name), f"{where}: unknown metric {name!r} in {expr!r}"
    for name, labels in selector_labels(expr):
        metric = base_name(name)
        if metric is None:
            continue
        allowed = KNOWN[metric] | TARGET_LABELS | ({"le"} if name.endswith("_bucket") else set())
        assert labels <= allowed, f"{where}: {name} has no label {labels - allowed} ({expr!r})"


def test_the_documented_metrics_were_found() -> None:
    documented = documented_metrics()
    assert "tradebus_risk_drawdown_ratio" in documented
    assert documented["tradebus_bus_messages_in_total"] == {"service", "subject"}
    assert documented["tradebus_telemetry_readiness"] == {"status"}


def test_every_shared_metric_is_documented_with_its_labels() -> None:
    documented = documented_metrics()
    for name, labels in code_metrics().items():
        assert documented.get(name) == labels, f"{name}{sorted(labels)} differs from ARCHITECTURE.md"


def test_the_promql_reader_finds_metrics_and_labels() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (service, le) (rate(tradebus_handler_duration_seconds_bucket{service=~"$s"}'
        '[$__rate_interval]))) or (x_total unless x_total offset 10m) > 1e3 and on(job) up{job="a"} == bool 1'
    )
    assert metric_names(expr) == {"tradebus_handler_duration_seconds_bucket", "x_total", "up"}
    assert selector_labels(expr) == [("tradebus_handler_duration_seconds_bucket", {"service"}), ("up", {"job"})]
    with pytest.raises(AssertionError, match="unknown metric"):
        check("test", "rate(tradebus_no_such_metric_total[5m])")
    with pytest.raises(AssertionError, match="has no label"):
        check("test", 'tradebus_risk_equity{symbol="BTCUSDT"}')


def test_alert_rules_use_only_known_metrics_and_labels(alert_rules: list[dict[str, Any]]) -> None:
    for rule in alert_rules:
        check(f"alert {rule['alert']}", rule["expr"])


def test_dashboards_use_only_known_metrics_and_labels(dashboards: dict[str, dict[str, Any]]) -> None:
    queries = dashboard_queries(dashboards)
    assert len(queries) > 40
    for where, expr in queries:
        check(where, expr)


def test_dashboard_variables_read_known_labels(dashboards: dict[str, dict[str, Any]]) -> None:
    for where, metric, label in variable_queries(dashboards):
        assert metric in KNOWN, where
        assert label in KNOWN[metric], where
