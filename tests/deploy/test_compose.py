"""docker-compose.yml: the whole stack, wired to the contract's ports, health and dependencies."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tradebus import natsauth
from tradebus.settings import CONSOLE, DEFAULT_PORTS, PROCESSES, SERVICES

REPO = Path(__file__).resolve().parents[2]
INFRASTRUCTURE = ("nats", "postgres", "redis", "redis-exporter", "prometheus", "grafana")
MIN_GRACE_S = 20


def seconds(duration: str) -> float:
    """Compose durations like `40s`, `1m30s`."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, f"bad duration {duration!r}"
    return int(parts.group(1) or 0) * 60 + int(parts.group(2) or 0)


def test_the_stack_has_the_infrastructure_and_the_six_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {*INFRASTRUCTURE, *PROCESSES}


@pytest.mark.parametrize("name", PROCESSES)
def test_each_service_runs_its_module_on_its_port(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    port = DEFAULT_PORTS[name]
    assert service["command"] == ["python", "-m", f"tradebus_{name}"]
    assert service["ports"] == [f"${{TRADEBUS_BIND:-127.0.0.1}}:${{TRADEBUS_{name.upper()}_PORT:-{port}}}:{port}"]
    assert service["build"] == {"context": ".", "dockerfile": "deploy/docker/Dockerfile"}
    assert service["restart"] == "unless-stopped"
    assert seconds(service["stop_grace_period"]) >= MIN_GRACE_S


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_is_healthy_only_when_ready_and_starts_after_its_dependencies(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]
    assert service["healthcheck"]["test"] == ["CMD", "python", "/opt/tradebus/healthcheck.py", name]
    assert service["healthcheck"]["start_period"]
    for dependency in ("nats", "postgres"):
        assert service["depends_on"][dependency] == {"condition": "service_healthy"}
        assert "healthcheck" in compose["services"][dependency]


def test_the_console_needs_the_bus_and_redis_but_no_database(compose: dict[str, Any]) -> None:
    console = compose["services"][CONSOLE]
    assert console["healthcheck"]["test"] == ["CMD", "python", "/opt/tradebus/healthcheck.py", CONSOLE]
    assert set(console["depends_on"]) == {"nats", "redis"}
    for name in ("aggregator", "risk", "telemetry", "rollup"):
        assert console["environment"][f"CONSOLE_{name.upper()}_URL"] == f"http://{name}:{DEFAULT_PORTS[name]}"


@pytest.mark.parametrize("name", PROCESSES)
def test_each_service_reaches_the_infrastructure_by_its_compose_name(compose: dict[str, Any], name: str) -> None:
    env = compose["services"][name]["environment"]
    postgres = compose["services"]["postgres"]["environment"]
    assert env["NATS_URL"] == "nats://nats:4222"
    assert env["DATABASE_URL"] == (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/{postgres['POSTGRES_DB']}"
    )
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    assert env["HTTP_HOST"] == "0.0.0.0"
    assert env["INGEST_SOURCE"] == "${INGEST_SOURCE:-auto}"
    assert env["TRADEBUS_API_TOKEN"] == "${TRADEBUS_API_TOKEN:-}"
    assert env["SYMBOLS"]


@pytest.mark.parametrize("name", PROCESSES)
def test_each_service_logs_in_to_nats_as_itself_with_only_its_own_password(compose: dict[str, Any], name: str) -> None:
    env = compose["services"][name]["environment"]
    assert env["NATS_USER"] == name
    assert env["NATS_PASSWORD"].startswith(f"${{{natsauth.password_variable(name)}:?")
    passwords = [key for key, value in env.items() if "PASSWORD" in str(value) and "NATS" in str(value)]
    assert passwords == ["NATS_PASSWORD"]


def test_nats_gets_a_hash_of_every_users_password_and_requires_them(compose: dict[str, Any]) -> None:
    env = compose["services"]["nats"]["environment"]
    assert set(env) == {natsauth.password_variable(user) for user in natsauth.USERS}
    for user in natsauth.USERS:
        assert env[natsauth.password_variable(user)].startswith(f"${{{natsauth.password_variable(user)}_HASH:?")


def test_every_published_port_binds_loopback_unless_told_otherwise(compose: dict[str, Any]) -> None:
    ports = [port for service in compose["services"].values() for port in service.get("ports", [])]
    assert ports and all(port.startswith("${TRADEBUS_BIND:-127.0.0.1}:") for port in ports), ports


def test_no_secret_is_written_into_the_compose_file(compose: dict[str, Any]) -> None:
    """Passwords come from the environment; the fallbacks are development defaults only."""
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:-")
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:-")
    assert grafana["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_infrastructure_listens_on_the_contract_ports(compose: dict[str, Any]) -> None:
    published = {name: [p.rsplit(":", 1)[1] for p in s.get("ports", [])] for name, s in compose["services"].items()}
    assert published["nats"] == ["4222", "8222"]
    assert published["postgres"] == ["5432"]
    assert published["redis"] == ["6379"]
    assert published["prometheus"] == ["9090"]
    assert published["grafana"] == ["3000"]


def test_mounted_files_exist_in_the_repository(compose: dict[str, Any]) -> None:
    binds = [v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes", [])]
    local = [b for b in binds if b.startswith("./")]
    assert local, "the stack mounts its configuration from deploy/"
    for path in local:
        assert (REPO / path).exists(), path
    named = {b for b in binds if not b.startswith(("./", "/"))}
    assert named <= set(compose["volumes"])


def test_grafana_home_dashboard_is_one_of_the_mounted_dashboards(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    host_dir = next(host for host, target in mounts.items() if target == str(home.parent))
    assert (REPO / host_dir / home.name).is_file()


def test_nats_runs_jetstream_with_the_mounted_config_and_auth_on(compose: dict[str, Any]) -> None:
    nats = compose["services"]["nats"]
    assert nats["command"] == ["--config", "/etc/nats/auth.conf"]
    assert "./deploy/nats:/etc/nats:ro" in nats["volumes"]
    assert any(v.endswith(":/data") for v in nats["volumes"])


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (v1, Debian package) not installed")
def test_docker_compose_validates_the_file(tmp_path: Path) -> None:
    """Compose v1 checks the schema without an engine; it predates the top-level `name` key. The
    NATS credentials are required: with the env file `make up` writes it validates."""
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    v1 = tmp_path / "docker-compose.yml"
    v1.write_text(re.sub(r"(?m)^name: .*\n", "", text), encoding="utf-8")
    credentials = natsauth.Credentials(tmp_path / "credentials")
    credentials.generate()
    result = subprocess.run(
        [
            "docker-compose",
            "-f",
            str(v1),
            "--project-directory",
            str(REPO),
            "--env-file",
            str(credentials.compose_env),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
