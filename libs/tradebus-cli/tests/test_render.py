"""What `up` and `status` print about the dependencies: whole lines to paste, and what does not run."""

from __future__ import annotations

from rich.console import Console

from tradebus_cli.render import connect_lines, deps_table, monitors_table
from tradebus_cli.rundir import Dependency, ServiceState, StackState

SOCKET_DSN = "postgresql://postgres:@/tradebus?host=/home/someone/projects/tradebus/.run/postgres/data/socket-dir"


def _printed(deps: dict[str, Dependency]) -> str:
    console = Console(record=True, width=100, color_system=None)
    console.print(deps_table(deps))
    for line in connect_lines(deps):
        console.print(line, soft_wrap=True, highlight=False)
    return console.export_text()


def test_the_database_gets_a_whole_psql_line() -> None:
    deps = {
        "nats": Dependency(url="nats://127.0.0.1:4222", embedded=True, credentials_dir="/x/.run/credentials"),
        "postgres": Dependency(url=SOCKET_DSN, embedded=True, detail="embedded PostgreSQL"),
        "redis": Dependency(url="redis://127.0.0.1:6379/0", ok=False, detail="not answering; optional"),
    }
    out = _printed(deps)
    lines = out.splitlines()
    assert f"PostgreSQL: psql '{SOCKET_DSN}'" in lines or any(
        line.endswith(f"psql '{SOCKET_DSN}'") for line in lines
    ), out
    assert "NATS: nats://127.0.0.1:4222 as reader, password in /x/.run/credentials/reader.password" in lines


def test_the_monitoring_table_says_what_runs_and_that_grafana_needs_docker() -> None:
    state = StackState(
        mode="local",
        monitors={"prometheus": ServiceState(url="http://127.0.0.1:9090")},
        monitors_skipped={"alertmanager": "not installed (apt-get install prometheus-alertmanager)"},
    )
    console = Console(record=True, width=140, color_system=None)
    console.print(monitors_table(state))
    rows = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if line.count("│") >= 4}
    assert "http://127.0.0.1:9090" in rows["prometheus"]
    assert "not installed" in rows["alertmanager"] and "no" in rows["alertmanager"]
    assert "http://127.0.0.1:3000" in rows["grafana"] and "local mode runs no Grafana; Docker does" in rows["grafana"]


def test_a_password_in_the_database_url_is_not_printed() -> None:
    deps = {"postgres": Dependency(url="postgresql://app:s3cret@db.example:5432/tradebus")}
    out = _printed(deps)
    assert "s3cret" not in out and "psql 'postgresql://app:***@db.example:5432/tradebus'" in out
