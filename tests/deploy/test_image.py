"""The service image: Dockerfile, build context, dependency extraction and the health probe."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from tradebus.embedded import free_port
from tradebus.settings import SERVICES

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
DOCKERFILE = (DOCKER / "Dockerfile").read_text(encoding="utf-8")


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def instructions(keyword: str) -> list[list[str]]:
    """Arguments of every `keyword` instruction (continuation lines joined)."""
    joined = DOCKERFILE.replace("\\\n", " ")
    return [line.split()[1:] for line in joined.splitlines() if line.startswith(f"{keyword} ")]


def test_image_is_python_311_slim_running_as_a_non_root_user() -> None:
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE
    users = instructions("USER")
    assert users and users[-1][0].split(":")[0] not in {"root", "0"}


def test_services_listen_on_all_interfaces_in_the_container() -> None:
    assert "HTTP_HOST=0.0.0.0" in " ".join(" ".join(args) for args in instructions("ENV"))


def test_every_service_manifest_is_copied_before_the_sources_for_layer_caching() -> None:
    copies = [args for args in instructions("COPY") if not args[0].startswith("--from")]
    sources = [args[0] for args in copies]
    manifests = [f"services/{name}/pyproject.toml" for name in SERVICES] + ["libs/tradebus/pyproject.toml"]
    for manifest in manifests:
        assert manifest in sources, manifest
        assert sources.index(manifest) < sources.index("services"), "manifests come before the code"
    for source in sources:
        assert (REPO / source).exists(), source


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [args[0] for args in instructions("COPY") if not args[0].startswith("--from")]
    for source in copied:
        assert not any(fnmatch.fnmatch(source, p) for p in patterns), f"{source} is excluded from the context"
    assert ".venv" in patterns
    assert ".run" in patterns


def test_external_requirements_are_the_third_party_dependencies_only() -> None:
    module = load(DOCKER / "external_requirements.py")
    packages = [REPO / "libs" / "tradebus", *(REPO / "services" / name for name in SERVICES)]
    found = module.external_requirements(packages)
    names = {module.requirement_name(r) for r in found}
    assert not any(name.startswith("tradebus") for name in names)
    library = tomllib.loads((REPO / "libs" / "tradebus" / "pyproject.toml").read_text(encoding="utf-8"))
    assert set(library["project"]["dependencies"]) <= set(found)
    assert module.requirement_name("faststream[nats]>=0.7") == "faststream"
    assert module.requirement_name("Pydantic_Settings>=2") == "pydantic-settings"


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health/ready" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Health", (_Health,), {"status": 200})
    server = HTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def run_probe(service: str, port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, f"TRADEBUS_{service.upper()}_PORT": str(port)}
    return subprocess.run(
        [sys.executable, str(DOCKER / "healthcheck.py"), service],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_health_probe_passes_on_200_and_fails_on_503(health_server: tuple[int, type[_Health]]) -> None:
    port, handler = health_server
    ok = run_probe("risk", port)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"127.0.0.1:{port}/health/ready -> 200" in ok.stdout
    handler.status = 503
    down = run_probe("risk", port)
    assert down.returncode == 1
    assert "-> 503" in down.stdout


def test_health_probe_fails_when_nothing_listens_and_refuses_unknown_services(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = load(DOCKER / "healthcheck.py")
    assert probe.main(["nosuch"]) == 2
    monkeypatch.setenv("TRADEBUS_ROLLUP_PORT", str(free_port()))
    ok, detail = probe.probe("rollup")
    assert not ok
    assert "/health/ready" in detail
