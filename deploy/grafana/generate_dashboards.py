"""Generate the provisioned Grafana dashboards in `dashboards/` (dashboards as code).

Run `python deploy/grafana/generate_dashboards.py` after editing a panel here, and commit the
JSON it writes; `--check` exits 1 when the committed JSON differs (tests/deploy runs it). Panels
are built from a few helpers so that every dashboard shares the datasource (uid `prometheus`,
provisioned by provisioning/datasources/prometheus.yml), units, colours and layout rules, and
PromQL uses only the metric names listed in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Json = dict[str, Any]

DATASOURCE: Json = {"type": "prometheus", "uid": "prometheus"}
DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 39
GRID_WIDTH = 24
RATE = "$__rate_interval"
TRADEBUS_JOBS = "ingest|aggregator|signal|risk|telemetry|rollup"

GREEN, ORANGE, RED, BLUE = "green", "orange", "red", "blue"


# ---- building blocks ---------------------------------------------------------------------------


def target(expr: str, legend: str = "", *, instant: bool = False) -> Json:
    """A Prometheus query; `instant` for panels that show the current value over the range."""
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "instant": instant,
        "range": not instant,
    }


def thresholds(*steps: tuple[float | None, str]) -> Json:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


def value_map(*entries: tuple[int, str, str]) -> list[Json]:
    """Value mappings that show a state name in its colour, e.g. (1, "READY", GREEN)."""
    options = {str(value): {"text": text, "color": color, "index": i} for i, (value, text, color) in enumerate(entries)}
    return [{"type": "value", "options": options}]


@dataclass
class Panel:
    """A panel before layout: its kind, size and JSON body (ids and positions come later)."""

    kind: str
    title: str
    targets: list[Json]
    width: int = 12
    height: int = 8
    unit: str = "short"
    description: str = ""
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    steps: Json = field(default_factory=lambda: thresholds((None, GREEN)))
    mappings: list[Json] = field(default_factory=list)
    options: Json = field(default_factory=dict)
    custom: Json = field(default_factory=dict)

    def to_json(self, panel_id: int, x: int, y: int) -> Json:
        defaults: Json = {"unit": self.unit, "thresholds": self.steps, "mappings": self.mappings, "custom": self.custom}
        if self.mappings or self.kind in {"stat", "gauge", "bargauge", "state-timeline"}:
            defaults["color"] = {"mode": "thresholds"}
        else:
            defaults["color"] = {"mode": "palette-classic"}
        for key in ("decimals", "min", "max"):
            if getattr(self, key) is not None:
                defaults[key] = getattr(self, key)
        return {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": self.width, "h": self.height},
            "targets": [{"refId": chr(ord("A") + i), **t} for i, t in enumerate(self.targets)],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": self.options,
        }


@dataclass
class Row:
    """A full-width section header."""

    title: str


def timeseries(title: str, *targets: Json, unit: str = "short", stack: bool = False, **kw: Any) -> Panel:
    custom: Json = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": False}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    if "steps" in kw:
        custom["thresholdsStyle"] = {"mode": "line"}
    options = {
        "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True, "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return Panel("timeseries", title, list(targets), unit=unit, custom=custom, options=options, **kw)


def stat(title: str, *targets: Json, width: int = 6, height: int = 4, **kw: Any) -> Panel:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": "auto",
    }
    return Panel("stat", title, list(targets), width=width, height=height, options=options, **kw)


def gauge(title: str, *targets: Json, width: int = 6, height: int = 4, **kw: Any) -> Panel:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showThresholdMarkers": True,
        "showThresholdLabels": False,
    }
    return Panel("gauge", title, list(targets), width=width, height=height, options=options, **kw)


def bars(title: str, *targets: Json, **kw: Any) -> Panel:
    """Horizontal bars of current values (e.g. counts over the dashboard's time range)."""
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "horizontal",
        "displayMode": "gradient",
        "showUnfilled": True,
    }
    return Panel("bargauge", title, list(targets), options=options, **kw)


def state_timeline(title: str, *targets: Json, **kw: Any) -> Panel:
    options = {
        "showValue": "auto",
        "mergeValues": True,
        "rowHeight": 0.9,
        "alignValue": "left",
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return Panel("state-timeline", title, list(targets), options=options, **kw)


def quantiles(title: str, histogram: str, selector: str, by: str, **kw: Any) -> Panel:
    """p50 and p99 of a histogram, per `by` labels."""
    matchers = f"{{{selector}}}" if selector else ""
    bucket = f"sum by ({by}, le) (rate({histogram}_bucket{matchers}[{RATE}]))"
    legend = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(","))
    return timeseries(
        title,
        target(f"histogram_quantile(0.5, {bucket})", f"p50 {legend}"),
        target(f"histogram_quantile(0.99, {bucket})", f"p99 {legend}"),
        unit="s",
        **kw,
    )


def query_variable(name: str, label: str, query: str) -> Json:
    """A multi-value template variable with an All option, from `label_values(...)`."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "sort": 1,
        "hide": 0,
    }


def layout(items: list[Panel | Row]) -> list[Json]:
    """Ids in order and grid positions: left to right, wrapping at 24 columns, rows full width."""
    panels: list[Json] = []
    x = y = line_height = 0
    for panel_id, item in enumerate(items, start=1):
        if isinstance(item, Row):
            y += line_height
            x, line_height = 0, 0
            panels.append(
                {
                    "id": panel_id,
                    "type": "row",
                    "title": item.title,
                    "collapsed": False,
                    "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": 1},
                    "panels": [],
                }
            )
            y += 1
            continue
        if x + item.width > GRID_WIDTH:
            y += line_height
            x, line_height = 0, 0
        panels.append(item.to_json(panel_id, x, y))
        x += item.width
        line_height = max(line_height, item.height)
    return panels


def dashboard(uid: str, title: str, description: str, items: list[Panel | Row], variables: list[Json]) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["tradebus"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "templating": {"list": variables},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "type": "dashboards",
                "tags": ["tradebus"],
                "asDropdown": True,
                "title": "tradebus",
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "panels": layout(items),
    }


# ---- the dashboards ----------------------------------------------------------------------------

SERVICE = 'service=~"$service"'
SYMBOL = 'symbol=~"$symbol"'
SERVICE_VAR = query_variable("service", "Service", "label_values(tradebus_service_ready, service)")
SYMBOL_VAR = query_variable("symbol", "Symbol", "label_values(tradebus_telemetry_feed_age_seconds, symbol)")
READY_MAP = value_map((1, "READY", GREEN), (0, "NOT READY", RED))
OK_MAP = value_map((1, "OK", GREEN), (0, "FAILING", RED))
# Telemetry's status as one number (the gauge is 1 for the current status): 2 READY, 1 DEGRADED, 0 BLOCKED.
READINESS_LEVEL = (
    'max(tradebus_telemetry_readiness{status="READY"}) * 2 + max(tradebus_telemetry_readiness{status="DEGRADED"})'
)
READINESS_MAP = value_map((2, "READY", GREEN), (1, "DEGRADED", ORANGE), (0, "BLOCKED", RED))
READINESS_STEPS = thresholds((None, RED), (1, ORANGE), (2, GREEN))


def system_overview() -> Json:
    items: list[Panel | Row] = [
        Row("Services"),
        stat(
            "Service readiness",
            target(f"tradebus_service_ready{{{SERVICE}}}", "{{service}}"),
            width=16,
            mappings=READY_MAP,
            steps=thresholds((None, RED), (1, GREEN)),
            description="1 while the service's critical readiness checks (bus, database, consumers) pass.",
        ),
        stat(
            "Scrape targets down",
            target(f'count(up{{job=~"{TRADEBUS_JOBS}"}} == 0) or vector(0)', "down"),
            width=8,
            steps=thresholds((None, GREEN), (1, RED)),
            description="Services Prometheus cannot scrape (see the ServiceDown alert).",
        ),
        Row("Bus traffic"),
        timeseries(
            "Messages in per service",
            target(f"sum by (service) (rate(tradebus_bus_messages_in_total{{{SERVICE}}}[{RATE}]))", "{{service}}"),
            unit="cps",
        ),
        timeseries(
            "Messages out per service",
            target(f"sum by (service) (rate(tradebus_bus_messages_out_total{{{SERVICE}}}[{RATE}]))", "{{service}}"),
            unit="cps",
        ),
        Row("Handlers"),
        quantiles(
            "Handler latency per batch (p50, p99)",
            "tradebus_handler_duration_seconds",
            SERVICE,
            "service, consumer",
            width=24,
        ),
        timeseries(
            "Handler errors",
            target(
                f"sum by (service, consumer, kind) (rate(tradebus_handler_errors_total{{{SERVICE}}}[{RATE}]))",
                "{{service}}/{{consumer}} {{kind}}",
            ),
            unit="cps",
            description="Batches whose handler raised; the shell retries them one by one.",
        ),
        timeseries(
            "Dead-lettered messages",
            target(
                f"sum by (service, reason) (increase(tradebus_dlq_messages_total{{{SERVICE}}}[{RATE}]))",
                "{{service}} {{reason}}",
            ),
            stack=True,
            description="Messages sent to dlq.<service>: malformed or failing on their own (DLQGrowing alert).",
        ),
        stat(
            "Dead letters in range",
            target(f"sum(increase(tradebus_dlq_messages_total{{{SERVICE}}}[$__range])) or vector(0)", "DLQ"),
            width=6,
            decimals=0,
            steps=thresholds((None, GREEN), (1, ORANGE)),
        ),
        quantiles(
            "Signal compute time (p50, p99)",
            "tradebus_signal_compute_seconds",
            "",
            "job",
            width=18,
            height=4,
        ),
    ]
    return dashboard(
        "tradebus-system-overview",
        "tradebus / System overview",
        "Readiness, bus traffic, handler latency, errors and dead letters of the six services.",
        items,
        [SERVICE_VAR],
    )


def trading_performance() -> Json:
    drawdown_steps = thresholds((None, GREEN), (0.1, ORANGE), (0.15, RED))
    items: list[Panel | Row] = [
        Row("Account (risk)"),
        stat("Equity", target("tradebus_risk_equity", "equity"), decimals=2, steps=thresholds((None, BLUE))),
        gauge(
            "Equity drawdown",
            target("tradebus_risk_drawdown_ratio", "drawdown"),
            unit="percentunit",
            min=0,
            max=0.2,
            steps=drawdown_steps,
            description="Below the equity peak; risk freezes trading at RISK_MAX_DRAWDOWN_PCT (default 20%).",
        ),
        stat(
            "Open positions", target("tradebus_risk_open_positions", "open"), decimals=0, steps=thresholds((None, BLUE))
        ),
        stat(
            "Trading",
            target("tradebus_risk_trading_frozen", "trading"),
            mappings=value_map((0, "ACTIVE", GREEN), (1, "FROZEN", RED)),
            steps=thresholds((None, GREEN), (1, RED)),
        ),
        stat(
            "Circuit breakers open",
            target("count(tradebus_risk_breaker_open == 1) or vector(0)", "open"),
            decimals=0,
            steps=thresholds((None, GREEN), (1, RED)),
            description="Symbols (or ACCOUNT) whose entries risk refuses; GET /v1/risk/breakers says why.",
        ),
        timeseries("Equity", target("tradebus_risk_equity", "equity"), decimals=2),
        timeseries(
            "Equity drawdown",
            target("tradebus_risk_drawdown_ratio", "below peak equity"),
            unit="percentunit",
            steps=drawdown_steps,
            description="(peak equity - equity) / peak equity of the paper account, marked at each 1m bar.",
        ),
        Row("Decisions and fills"),
        bars(
            "Decisions by reason (time range)",
            target(
                "sum by (decision, reason) (increase(tradebus_risk_decisions_total[$__range]))",
                "{{decision}} {{reason}}",
                instant=True,
            ),
            decimals=0,
            steps=thresholds((None, BLUE)),
        ),
        timeseries(
            "Fills by side",
            target(f"sum by (side) (increase(tradebus_risk_fills_total[{RATE}]))", "{{side}}"),
            stack=True,
            decimals=0,
        ),
        timeseries(
            "Signals by state",
            target(f"sum by (state) (increase(tradebus_signal_signals_total[{RATE}]))", "{{state}}"),
            stack=True,
            decimals=0,
            width=24,
        ),
        Row("Performance (rollup)"),
        stat(
            "Win rate",
            target("tradebus_rollup_win_rate", "win rate"),
            unit="percentunit",
            steps=thresholds((None, RED), (0.4, ORANGE), (0.5, GREEN)),
        ),
        stat(
            "Daily P&L",
            target("tradebus_rollup_daily_pnl", "daily P&L"),
            decimals=2,
            steps=thresholds((None, RED), (0, GREEN)),
        ),
        stat(
            "Net P&L",
            target("tradebus_rollup_net_pnl_total", "net P&L"),
            decimals=2,
            steps=thresholds((None, RED), (0, GREEN)),
        ),
        stat("Trades", target("tradebus_rollup_trades_total", "trades"), decimals=0, steps=thresholds((None, BLUE))),
        timeseries("Daily P&L", target("tradebus_rollup_daily_pnl", "daily P&L"), decimals=2),
        timeseries("Win rate", target("tradebus_rollup_win_rate", "win rate"), unit="percentunit", min=0, max=1),
    ]
    return dashboard(
        "tradebus-trading-performance",
        "tradebus / Trading performance",
        "Paper account (equity, drawdown, positions), risk decisions, fills and daily performance.",
        items,
        [],
    )


def data_quality_readiness() -> Json:
    items: list[Panel | Row] = [
        Row("Readiness"),
        stat(
            "Pipeline readiness",
            target(READINESS_LEVEL, "readiness"),
            width=8,
            mappings=READINESS_MAP,
            steps=READINESS_STEPS,
            description="Telemetry's verdict from the failure points (GET /v1/readiness on telemetry).",
        ),
        stat(
            "Failure points failing",
            target("count(tradebus_telemetry_failure_point_ok == 0) or vector(0)", "failing"),
            width=8,
            decimals=0,
            steps=thresholds((None, GREEN), (1, ORANGE)),
        ),
        stat(
            "Quality issues in range",
            target(
                f"sum(increase(tradebus_telemetry_quality_issues_total{{{SYMBOL}}}[$__range])) or vector(0)", "issues"
            ),
            width=8,
            decimals=0,
            steps=thresholds((None, GREEN), (1, ORANGE)),
        ),
        state_timeline(
            "Readiness over time",
            target(READINESS_LEVEL, "readiness"),
            width=24,
            height=4,
            mappings=READINESS_MAP,
            steps=READINESS_STEPS,
        ),
        state_timeline(
            "Failure points",
            target("tradebus_telemetry_failure_point_ok", "{{name}}"),
            width=24,
            height=10,
            mappings=OK_MAP,
            steps=thresholds((None, RED), (1, GREEN)),
        ),
        Row("Feeds"),
        timeseries(
            "Feed age per symbol",
            target(f"tradebus_telemetry_feed_age_seconds{{{SYMBOL}}}", "{{symbol}}"),
            unit="s",
            steps=thresholds((None, GREEN), (300, ORANGE), (600, RED)),
            description="Time since the symbol's last 1m bar; FeedStale warns over 5 min, critical over 10 min.",
        ),
        timeseries(
            "Ingest: time since last bar",
            target(f"time() - tradebus_ingest_last_bar_timestamp_seconds{{{SYMBOL}}}", "{{symbol}}"),
            unit="s",
        ),
        timeseries(
            "Bars ingested",
            target(
                f"sum by (symbol, source) (rate(tradebus_ingest_bars_total{{{SYMBOL}}}[{RATE}]))",
                "{{symbol}} {{source}}",
            ),
            unit="cps",
        ),
        quantiles("Feed latency (exchange close to publish)", "tradebus_ingest_feed_latency_seconds", "", "job"),
        state_timeline(
            "WebSocket connection",
            target("websocket_connection_status", "{{source}}"),
            height=6,
            mappings=value_map((1, "CONNECTED", GREEN), (0, "DISCONNECTED", RED)),
            steps=thresholds((None, RED), (1, GREEN)),
        ),
        timeseries(
            "WebSocket reconnections and REST calls",
            target(
                f"sum by (source, status) (increase(websocket_reconnections_total[{RATE}]))",
                "reconnect {{source}} {{status}}",
            ),
            target(f"sum by (status) (increase(tradebus_ingest_rest_calls_total[{RATE}]))", "REST {{status}}"),
            height=6,
            decimals=0,
        ),
        Row("Quality"),
        timeseries(
            "Quality issues by kind",
            target(
                f"sum by (kind, severity) (increase(tradebus_telemetry_quality_issues_total{{{SYMBOL}}}[{RATE}]))",
                "{{kind}} ({{severity}})",
            ),
            stack=True,
            decimals=0,
        ),
        bars(
            "Quality issues by symbol and kind (time range)",
            target(
                f"sum by (symbol, kind) (increase(tradebus_telemetry_quality_issues_total{{{SYMBOL}}}[$__range]))",
                "{{symbol}} {{kind}}",
                instant=True,
            ),
            decimals=0,
            steps=thresholds((None, ORANGE)),
        ),
        timeseries(
            "Rejected input rows",
            target(f"sum by (reason) (increase(tradebus_ingest_rejected_rows_total[{RATE}]))", "{{reason}}"),
            decimals=0,
        ),
        timeseries(
            "Aggregated bars published",
            target(f"sum by (interval) (increase(tradebus_aggregator_bars_published_total[{RATE}]))", "{{interval}}"),
            stack=True,
            decimals=0,
        ),
        timeseries(
            "Incomplete and revised bars",
            target(
                f"sum by (interval) (increase(tradebus_aggregator_incomplete_bars_total[{RATE}]))",
                "incomplete {{interval}}",
            ),
            target(
                f"sum by (interval) (increase(tradebus_aggregator_bars_revised_total[{RATE}]))", "revised {{interval}}"
            ),
            decimals=0,
        ),
    ]
    return dashboard(
        "tradebus-data-quality",
        "tradebus / Data quality and readiness",
        "Readiness (READY / DEGRADED / BLOCKED), failure points, feed freshness and data-quality issues.",
        items,
        [SYMBOL_VAR],
    )


def infrastructure() -> Json:
    job = 'job=~"$service"'
    items: list[Panel | Row] = [
        Row("Bus (NATS JetStream, as the services see it)"),
        timeseries(
            "Messages published by subject",
            target(f"sum by (subject) (rate(tradebus_bus_messages_out_total{{{SERVICE}}}[{RATE}]))", "{{subject}}"),
            unit="cps",
        ),
        timeseries(
            "Messages consumed by subject",
            target(f"sum by (subject) (rate(tradebus_bus_messages_in_total{{{SERVICE}}}[{RATE}]))", "{{subject}}"),
            unit="cps",
        ),
        Row("Bus (NATS JetStream, as the server counts it; read by telemetry)"),
        timeseries(
            "Durable backlog",
            target("max by (consumer) (tradebus_jetstream_consumer_pending_messages)", "{{consumer}}"),
            steps=thresholds((None, GREEN), (10000, RED)),
            decimals=0,
            description="Messages not yet delivered to each durable, from the server: a dead consumer's backlog "
            "stays here (ConsumerLagHigh above 10000 for 5 min).",
        ),
        timeseries(
            "Delivered, not acked",
            target("max by (consumer) (tradebus_jetstream_consumer_ack_pending_messages)", "{{consumer}}"),
            decimals=0,
            description="ConsumerNotProgressing fires when a durable has a backlog and its ack floor stands still.",
        ),
        timeseries(
            "Redeliveries",
            target(
                f"max by (consumer) (increase(tradebus_jetstream_consumer_redelivered_messages[{RATE}]))",
                "{{consumer}}",
            ),
            decimals=0,
        ),
        timeseries(
            "Stream size",
            target("max by (stream) (tradebus_jetstream_stream_messages)", "{{stream}}"),
            decimals=0,
        ),
        Row("Database (PostgreSQL)"),
        stat(
            "PostgreSQL",
            target('pg_up{job="postgres"}', "postgres"),
            mappings=value_map((1, "UP", GREEN), (0, "DOWN", RED)),
            steps=thresholds((None, RED), (1, GREEN)),
            description="From postgres-exporter (compose); local mode has no exporter: see the services' "
            "database checks (DatabaseUnreachable).",
        ),
        stat("Connections", target('sum(pg_stat_database_numbackends{job="postgres"})', "connections"), decimals=0),
        stat(
            "NATS connections",
            target('gnatsd_varz_connections{job="nats"}', "connections"),
            decimals=0,
            description="From prometheus-nats-exporter (compose).",
        ),
        stat("NATS memory", target('gnatsd_varz_mem{job="nats"}', "memory"), unit="bytes"),
        quantiles("Query latency (p50, p99)", "tradebus_db_query_duration_seconds", SERVICE, "service, query"),
        timeseries(
            "Queries per second",
            target(
                f"sum by (service) (rate(tradebus_db_query_duration_seconds_count{{{SERVICE}}}[{RATE}]))", "{{service}}"
            ),
            unit="cps",
        ),
        Row("Processes"),
        timeseries(
            "Resident memory",
            target(f"process_resident_memory_bytes{{{job}}}", "{{job}}"),
            unit="bytes",
        ),
        timeseries(
            "CPU",
            target(f"rate(process_cpu_seconds_total{{{job}}}[{RATE}])", "{{job}}"),
            unit="percentunit",
            description="Share of one core.",
        ),
        Row("Redis"),
        stat(
            "Redis",
            target('redis_up{job="redis"}', "redis"),
            mappings=value_map((1, "UP", GREEN), (0, "DOWN", RED)),
            steps=thresholds((None, RED), (1, GREEN)),
        ),
        stat("Connected clients", target('redis_connected_clients{job="redis"}', "clients"), decimals=0),
        stat("Memory used", target('redis_memory_used_bytes{job="redis"}', "memory"), unit="bytes"),
        stat(
            "Scrape targets up",
            target("sum(up)", "up"),
            decimals=0,
            steps=thresholds((None, BLUE)),
        ),
        timeseries("Redis memory used", target('redis_memory_used_bytes{job="redis"}', "memory"), unit="bytes"),
        timeseries("Redis connected clients", target('redis_connected_clients{job="redis"}', "clients"), decimals=0),
    ]
    return dashboard(
        "tradebus-infrastructure",
        "tradebus / Infrastructure",
        "Bus traffic by subject, consumer lag, database latency, process CPU and memory, Redis.",
        items,
        [SERVICE_VAR],
    )


DASHBOARDS = {
    "system-overview.json": system_overview,
    "trading-performance.json": trading_performance,
    "data-quality-readiness.json": data_quality_readiness,
    "infrastructure.json": infrastructure,
}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    stale = []
    for name, build in DASHBOARDS.items():
        path = DASHBOARDS_DIR / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date (run {Path(__file__).name}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
