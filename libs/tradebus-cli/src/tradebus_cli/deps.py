"""Find NATS, PostgreSQL and Redis for a local stack; embed NATS and PostgreSQL when absent.

The supervisor calls `resolve` once at start-up and `Embedded.stop` on exit: only what it
started itself is stopped, a server that was already answering is never touched.

NATS: unless `NATS_URL` is set, the stack starts its own nats-server with auth on (fresh random
credentials in the run directory, one user per service), even when another server answers on
4222 — a server we did not configure may let anyone publish. With `NATS_URL` set, that server
is used as it is (an embedded one is started on its port only when nothing answers there), and
a server that accepts anonymous connections is reported loudly.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tradebus.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    ensure_database,
    free_port,
    nats_answers,
    postgres_answers,
)
from tradebus.logging import get_logger
from tradebus.natsauth import Credentials, accepts_anonymous
from tradebus_cli.rundir import Dependency, ProcessRef

log = get_logger(__name__)

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
ANONYMOUS_WARNING = "ACCEPTS ANONYMOUS CONNECTIONS: anyone who reaches it can publish forged events"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/tradebus"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_MONITOR_PORT = 8222
EMBEDDED_DATABASE = "tradebus"


def redact(url: str) -> str:
    """`url` without its password, for printing."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def redis_answers(url: str, timeout: float = 1.0) -> tuple[bool, str]:
    """Whether a Redis server answers PING at `url` (an auth demand still proves it is there)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        return False, f"not reachable ({exc.strerror or exc})"
    if reply.startswith((b"+PONG", b"-NOAUTH")):
        return True, "answers PING"
    return False, f"unexpected reply {reply[:20]!r}"


@dataclass
class Embedded:
    """The dependencies this supervisor started, to be stopped by it and by nobody else."""

    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None

    def stop(self) -> None:
        if self.nats:
            log.info("stopping embedded nats-server", url=self.nats.url)
            self.nats.stop()
        if self.postgres:
            log.info("stopping embedded postgresql")
            self.postgres.stop()


@dataclass
class Resolved:
    deps: dict[str, Dependency] = field(default_factory=dict)
    embedded: Embedded = field(default_factory=Embedded)


def resolve_nats(url: str | None, data_dir: Path, embedded: Embedded, credentials: Credentials) -> Dependency:
    """The bus: the one `url` (an explicit NATS_URL) names when it answers, else an embedded
    nats-server with auth on, for which fresh credentials are written to `credentials`."""
    if url is not None and nats_answers(url):
        shutil.rmtree(credentials.directory, ignore_errors=True)  # they would be for another server
        if accepts_anonymous(url):
            log.warning(
                f"NATS at NATS_URL {ANONYMOUS_WARNING}; configure users (deploy/nats/auth.conf)", url=redact(url)
            )
            return Dependency(url=url, detail=f"answers (NATS_URL); {ANONYMOUS_WARNING}")
        return Dependency(url=url, detail="answers (NATS_URL), login required")
    default_port = 4222 if port_is_free(4222) else free_port()  # 4222 may be a server not ours
    port = (urlsplit(url).port or 4222) if url is not None else default_port
    monitor = NATS_MONITOR_PORT if port_is_free(NATS_MONITOR_PORT) else None
    credentials.generate()
    log.info("starting an embedded nats-server with auth on", port=port, monitor_port=monitor)
    embedded.nats = EmbeddedNats(
        store_dir=data_dir / "nats", port=port, monitor_port=monitor, auth_config=credentials.server_config
    ).start()
    process = embedded.nats.process
    return Dependency(
        url=embedded.nats.url,
        embedded=True,
        detail=f"embedded nats-server, auth on, JetStream store {data_dir / 'nats'}",
        process=ProcessRef.of(process.pid) if process else None,
        credentials_dir=str(credentials.directory),
    )


def resolve_postgres(url: str, data_dir: Path, embedded: Embedded) -> Dependency:
    if postgres_answers(url):
        asyncio.run(ensure_database(url))
        return Dependency(url=url, detail="answers")
    log.info("postgresql not answering, starting an embedded one", url=redact(url))
    pg_dir = data_dir / "postgres"
    embedded.postgres = EmbeddedPostgres(pg_dir)
    dsn = embedded.postgres.dsn(EMBEDDED_DATABASE)
    asyncio.run(ensure_database(dsn))
    return Dependency(url=dsn, embedded=True, detail=f"embedded PostgreSQL in {pg_dir}", process=_postmaster(pg_dir))


def _postmaster(pg_dir: Path) -> ProcessRef | None:
    """The postmaster of an embedded cluster (first line of `postmaster.pid`)."""
    try:
        return ProcessRef.of(int((pg_dir / "postmaster.pid").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return None


def resolve(nats_url: str | None, database_url: str, redis_url: str, data_dir: Path) -> Resolved:
    """Every dependency's URL (`nats_url` None: NATS_URL not set); on failure the embedded ones
    started so far are stopped."""
    resolved = Resolved()
    try:
        resolved.deps["nats"] = resolve_nats(
            nats_url, data_dir, resolved.embedded, Credentials(data_dir / "credentials")
        )
        resolved.deps["postgres"] = resolve_postgres(database_url, data_dir, resolved.embedded)
    except BaseException:
        resolved.embedded.stop()
        raise
    ok, detail = redis_answers(redis_url)
    resolved.deps["redis"] = Dependency(url=redis_url, ok=ok, detail=f"{detail}; optional")
    return resolved
