"""Settings from environment variables, in one place; services subclass `Settings` for their own."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SERVICES: Final = ("ingest", "aggregator", "signal", "risk", "telemetry", "rollup")
DEFAULT_PORTS: Final[dict[str, int]] = {
    "ingest": 8081,
    "aggregator": 8082,
    "signal": 8083,
    "risk": 8084,
    "telemetry": 8085,
    "rollup": 8086,
    "console": 8087,
}
CONSOLE: Final = "console"
"""The trader's web page: it reads the bus and the services' APIs, owns no schema and publishes nothing."""
PROCESSES: Final = (*SERVICES, CONSOLE)
"""Every process a local stack runs (`tradebus up`); SERVICES are the pipeline's, which heartbeat."""
TRADEBUS_VARIABLES: Final = frozenset(
    {
        "TRADEBUS_ALERTMANAGER_PORT",
        "TRADEBUS_API_TOKEN",
        "TRADEBUS_BIND",
        "TRADEBUS_DEBUG",
        "TRADEBUS_DEPENDENCY_RESTART_S",
        "TRADEBUS_JOBS",
        "TRADEBUS_LOCAL",
        "TRADEBUS_MONITORING",
        "TRADEBUS_PROMETHEUS_INTERVAL_S",
        "TRADEBUS_PROMETHEUS_PORT",
        "TRADEBUS_PROMETHEUS_RULES",
        "TRADEBUS_RUN_DIR",
        "TRADEBUS_SUPERVISOR_PORT",
        "TRADEBUS_TEST_ADMIN_DSN",
        "TRADEBUS_WATCHDOG",
        "TRADEBUS_WATCHDOG_GRACE_S",
        "TRADEBUS_WATCHDOG_INTERVAL_S",
        "TRADEBUS_WATCHDOG_MAX_PER_HOUR",
        "TRADEBUS_WATCHDOG_MISSES",
        *(f"TRADEBUS_{service.upper()}_PORT" for service in DEFAULT_PORTS),
    }
)
"""Every `TRADEBUS_*` environment variable something reads (README and docs/ARCHITECTURE.md say what for)."""
DEFAULT_MAX_MESSAGE_BYTES: Final = 32 * 1024
"""The largest real event is a signal of five horizons with its explanation, ~4.4 KB (measured by
signal's `test_stored_data`); seven times that leaves room for more features, and refuses padding
long before NATS's 1 MB."""


class Settings(BaseSettings):
    """What every service reads: where the bus, database and cache are, and how to log."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str = ""
    """Who to connect as; empty: the service's own name (each service has its own NATS user)."""
    nats_password: SecretStr | None = None
    nats_password_file: Path | None = None
    """A file holding the password (compose secrets, the local run directory)."""
    nats_credentials_dir: Path | None = None
    """A directory of `<user>.password` files: each service reads its own (the tests, one host)."""
    database_url: str = "postgresql://postgres@127.0.0.1:5432/tradebus"
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    """auto: readable and coloured when stderr is a terminal, JSON lines otherwise."""
    http_host: str = "127.0.0.1"
    heartbeat_interval_s: float = 5.0
    symbols: Annotated[tuple[str, ...], NoDecode] = ("BTCUSDT", "ETHUSDT")
    instance: str = ""
    bus_max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES, gt=0, description="Larger messages are dead-lettered unread."
    )
    admission_live_max_age_days: float = Field(
        default=45.0, gt=0, description="A live event older than this is refused (the backfill horizon plus margin)."
    )
    admission_max_skew_s: float = Field(default=120.0, ge=0, description="How far in the future an event may lie.")
    rate_limit_window_s: float = Field(default=60.0, gt=0, description="The sliding window of the HTTP API's limits.")
    rate_limit_per_client: int = Field(
        default=3000, ge=0, description="API requests per window from one client address (0: unlimited)."
    )
    rate_limit_per_token: int = Field(
        default=3000, ge=0, description="API requests per window with one bearer token (0: unlimited)."
    )
    consumer_stall_s: float = Field(
        default=300.0,
        gt=0,
        description="A consumer with a backlog that has handled nothing for this long fails /health/live "
        "(the supervisor or an orchestrator restarts the process), unless a dependency is down.",
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            symbols = tuple(str(s).upper() for s in value)
            bad = [s for s in symbols if not s.isalnum()]
            if bad:
                raise ValueError(f"symbols must be alphanumeric like BTCUSDT, got {bad}")
            return symbols
        return value


def port_for(service: str) -> int:
    """HTTP port of `service`: `TRADEBUS_<SERVICE>_PORT`, else its default (docs/ARCHITECTURE.md, "The contract")."""
    import os

    name = f"TRADEBUS_{service.upper()}_PORT"
    raw = os.environ.get(name)
    if not raw:
        return DEFAULT_PORTS[service]
    if not raw.strip().isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{name}={raw!r} is not a port number (1-65535)")
    return int(raw)


def unknown_variables(environ: Mapping[str, str], prefix: str, known: Iterable[str]) -> list[str]:
    """A warning for each variable named `prefix…` that nothing reads (a misspelling is silently
    unused otherwise), with the closest known name."""
    names = sorted(known)
    warnings = []
    for name in sorted(n for n in environ if n.upper().startswith(prefix) and n.upper() not in names):
        close = difflib.get_close_matches(name.upper(), names, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"{name} is set but nothing reads it{hint}")
    return warnings


def describe_invalid(exc: ValidationError) -> str:
    """One line naming each environment variable that failed validation, and why (secrets unshown)."""
    parts = []
    for error in exc.errors():
        name = "_".join(str(p) for p in error["loc"]).upper() or exc.title
        secret = any(word in name for word in ("PASSWORD", "TOKEN", "SECRET"))
        shown = "" if secret or "input" not in error or isinstance(error["input"], dict) else f"={error['input']!r}"
        parts.append(f"{name}{shown}: {error['msg']}")
    return "invalid setting " + "; ".join(parts)


def url_for(service: str, host: str = "127.0.0.1") -> str:
    """Base HTTP URL of `service`."""
    return f"http://{host}:{port_for(service)}"
