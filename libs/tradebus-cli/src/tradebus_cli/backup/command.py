"""`tradebus backup` and `tradebus restore`: the whole stack's state in one archive, and back.

A backup snapshots every JetStream stream (messages and durable consumers, as `reader`) and then
dumps the six service schemas in one pg_dump. Taken in that order, the database is never behind
the bus's consumer positions: at worst a message is redelivered, and every service applies an
event once by its id. A publish between the two would leave the bus behind the database (an
outbox row marked sent whose event the snapshot lacks), so the event streams' last sequences
are compared before and after, and the backup is taken again when they moved.

A restore checks the archive completely first, refuses a non-empty target (unless `--force`),
then has the local supervisor stop the services (dependencies keep running), replaces each
stream and each schema, and lets the services start again on the restored state.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import asyncpg
from nats.aio.client import Client
from rich.console import Console

from tradebus.db import load_migrations
from tradebus.embedded import nats_answers
from tradebus.natsauth import ADMIN, READER, CredentialsError, LoginRefused
from tradebus.settings import SERVICES
from tradebus_cli import buslogin
from tradebus_cli.backup import archive, jetstream, postgres
from tradebus_cli.backup.archive import ArchiveError, Manifest, SavedStream
from tradebus_cli.backup.jetstream import JetStreamApiError
from tradebus_cli.backup.postgres import PostgresToolError
from tradebus_cli.deps import DEFAULT_DATABASE_URL, redact
from tradebus_cli.rundir import RunDir, repo_root, stack_url

ATTEMPTS: Final = 3
LIVE_STREAMS: Final = frozenset({"TELEMETRY"})
"""Streams a running stack writes to by itself (heartbeats, readiness): no reason to take a
backup again when they move; restored like the others."""
DATA_STREAMS: Final = ("BARS", "SIGNALS", "EXEC", "DLQ")
DATA_TABLES: Final = (
    "ingest.bars", "ingest.checkpoints", "aggregator.bars", "signal.bars", "signal.signals", "risk.orders",
    "risk.trades", "risk.positions", "rollup.trades",
)  # fmt: skip
"""What only market data fills: a target holding any of it is not empty. A fresh stack writes
other streams and tables by itself before it sees data (heartbeats, readiness, leases, risk's
starting balance, rollup's empty day), so those say nothing."""
PAUSE_TIMEOUT_S: Final = 60.0


class BackupError(Exception):
    """Backup or restore cannot proceed; the message is the one line the operator sees."""


class RestoreFailed(BackupError):
    """The restore failed after it began replacing the target's data."""


EXPECTED: Final = (BackupError, ArchiveError, JetStreamApiError, PostgresToolError, asyncpg.PostgresError)
"""What a command reports in one line (with OSError) instead of a traceback."""


@dataclass(frozen=True)
class Target:
    nats_url: str
    database_url: str

    @classmethod
    def from_env(cls) -> Target:
        return cls(buslogin.bus_url(), stack_url("DATABASE_URL", "postgres", DEFAULT_DATABASE_URL))


def default_output() -> Path:
    return repo_root() / "backups"


# --------------------------------------------------------------------------- connections
async def _connect(user: str, url: str) -> Client:
    if not nats_answers(url):
        raise BackupError(buslogin.unreachable(url))
    try:
        return await buslogin.connect(user, url, allow_reconnect=False, connect_timeout=5)
    except (LoginRefused, CredentialsError) as exc:
        raise BackupError(str(exc)) from None


async def _server_major(dsn: str) -> tuple[int, str]:
    try:
        return await postgres.server_major(dsn)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise BackupError(f"cannot reach PostgreSQL at {redact(dsn)}: {exc}") from None


async def _schema_versions(dsn: str) -> dict[str, int]:
    """Each service schema's newest applied migration (0: the schema is absent)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        versions = {}
        for schema in SERVICES:
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.schema_migrations")
            query = f"SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"
            versions[schema] = int(await conn.fetchval(query)) if exists else 0
        return versions
    finally:
        await conn.close()


async def _positions(nc: Client) -> dict[str, int]:
    """The last sequence of every stream but the live ones: what must not move during a backup."""
    names = await jetstream.stream_names(nc)
    return {n: (await jetstream.stream_info(nc, n))["state"]["last_seq"] for n in names if n not in LIVE_STREAMS}


# --------------------------------------------------------------------------- backup
def archive_path(output: Path, created: datetime) -> Path:
    """`output` itself, or a file named after `created` in it when it is a directory."""
    return output / f"tradebus-{created:%Y%m%dT%H%M%SZ}.tar" if output.is_dir() or not output.suffix else output


async def backup(target: Target, path: Path, console: Console) -> Manifest:
    """Write one archive of `target` to `path`."""
    major, pg_version = await _server_major(target.database_url)
    tools = postgres.find_tools(major)
    schemas = await _schema_versions(target.database_url)
    if not (present := [name for name, version in schemas.items() if version]):
        raise BackupError(f"the database at {redact(target.database_url)} holds no tradebus schema (nothing ran there)")
    nc = await _connect(READER, target.nats_url)
    try:
        with tempfile.TemporaryDirectory(prefix="tradebus-backup-") as work:
            workdir = Path(work)
            for attempt in range(1, ATTEMPTS + 1):
                before = await _positions(nc)
                streams = await _snapshot_streams(nc, workdir, console)
                with console.status("pg_dump of the service schemas"):
                    dump = workdir / archive.POSTGRES
                    await asyncio.to_thread(postgres.dump, tools, target.database_url, dump, present)
                if await _positions(nc) == before:
                    break
                console.print(f"events were published during the backup (attempt {attempt}); taking it again")
            else:
                raise BackupError(f"the stack kept publishing during {ATTEMPTS} attempts; retry when it is quieter")
            members = {archive.POSTGRES: workdir / archive.POSTGRES}
            members |= {archive.stream_member(name): workdir / archive.stream_member(name) for name in streams}
            manifest = Manifest(
                created_at=datetime.now(UTC),
                tradebus_version=_version(),
                nats_server=str(nc.connected_server_version),
                postgres_server=pg_version,
                pg_dump=tools.version,
                pg_dump_major=tools.major,
                nats_url=redact(target.nats_url),
                database_url=redact(target.database_url),
                schemas=schemas,
                streams=streams,
                files={name: archive.checksum(path) for name, path in members.items()},
            )
            await asyncio.to_thread(archive.write, path, manifest, members)
    finally:
        await nc.close()
    return manifest


async def _snapshot_streams(nc: Client, workdir: Path, console: Console) -> dict[str, SavedStream]:
    saved: dict[str, SavedStream] = {}
    for name in await jetstream.stream_names(nc):
        target = workdir / archive.stream_member(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with console.status(f"snapshot of stream {name}"), target.open("wb") as out:
            snap = await jetstream.snapshot(nc, name, out)
        floors = {c["name"]: c["ack_floor"]["stream_seq"] for c in await jetstream.consumers(nc, name)}
        saved[name] = SavedStream(config=snap.config, state=snap.state, consumers=floors)
    return saved


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("-", maxsplit=1)[0])[:3])


def _version() -> str:
    try:
        return metadata.version("tradebus")
    except metadata.PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------- restore
def check_schemas(manifest: Manifest, source: Path) -> None:
    """Refuse an archive whose schemas are newer than this code's migrations."""
    for schema, version in sorted(manifest.schemas.items()):
        known = max((m.version for m in load_migrations(f"tradebus_{schema}.migrations")), default=0)
        if version > known:
            raise BackupError(
                f"{source} holds schema {schema} at migration {version}, this tradebus knows up to {known}: "
                "restore it with the tradebus that made it"
            )


async def _contents(nc: Client, dsn: str) -> list[str]:
    """What of the market data the target already holds (see DATA_STREAMS)."""
    found = []
    for name in set(await jetstream.stream_names(nc)) & set(DATA_STREAMS):
        if messages := (await jetstream.stream_info(nc, name))["state"]["messages"]:
            found.append(f"stream {name} ({messages} messages)")
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for table in DATA_TABLES:
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
            if exists and await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
                found.append(f"table {table}")
    finally:
        await conn.close()
    return sorted(found)


async def restore(target: Target, manifest: Manifest, files: Path, *, force: bool, console: Console) -> dict[str, int]:
    """Replace every stream and schema of `target` with the archive's (its members under `files`);
    the messages restored per stream. The caller pauses the services around it."""
    major, _ = await _server_major(target.database_url)
    tools = postgres.find_tools(major, at_least=manifest.pg_dump_major)
    nc = await _connect(ADMIN, target.nats_url)
    try:
        if _version_tuple(manifest.nats_server) > _version_tuple(str(nc.connected_server_version)):
            raise BackupError(
                f"the archive's streams come from nats-server {manifest.nats_server}, the target runs "
                f"{nc.connected_server_version}: a snapshot restores into the same or a newer server"
            )
        if not force and (held := await _contents(nc, target.database_url)):
            raise BackupError(f"the target is not empty ({', '.join(held[:4])}); --force replaces it")
        async with paused_services(console):
            try:
                return await _replace(nc, target, manifest, files, tools, console)
            except (JetStreamApiError, PostgresToolError, asyncpg.PostgresError, OSError) as exc:
                raise RestoreFailed(f"the target is partly restored (run again with --force): {exc}") from None
    finally:
        await nc.close()


async def _replace(
    nc: Client, target: Target, manifest: Manifest, files: Path, tools: postgres.PgTools, console: Console
) -> dict[str, int]:
    """Every stream, then the six schemas, replaced by the archive's; the messages per stream."""
    restored = {}
    existing = set(await jetstream.stream_names(nc))
    for name, saved in sorted(manifest.streams.items()):
        if name in existing:
            await jetstream.delete_stream(nc, name)
        with console.status(f"restoring stream {name}"):
            restored[name] = await _restore_stream(nc, name, saved, files / archive.stream_member(name))
    with console.status("pg_restore of the service schemas"):
        await _drop_schemas(target.database_url)
        await asyncio.to_thread(postgres.restore, tools, target.database_url, files / archive.POSTGRES)
    return restored


async def _restore_stream(nc: Client, name: str, saved: SavedStream, path: Path) -> int:
    """Create stream `name` from its snapshot file; the messages it holds."""
    with path.open("rb") as source:
        chunks = iter(lambda: source.read(jetstream.CHUNK_BYTES), b"")
        info = await jetstream.restore(nc, name, saved.config, saved.state, chunks)
    return int(info.get("state", {}).get("messages", 0))


async def _drop_schemas(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        async with conn.transaction():
            for schema in SERVICES:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _refuse_running_services(run: RunDir) -> None:
    """Without a local supervisor to pause them, services still answering would work on under the
    restore with what they hold in memory: refuse."""
    from tradebus_cli import probe
    from tradebus_cli.stack import service_urls

    async with probe.client() as client:
        answering = [h.service for h in await probe.probe_all(client, service_urls(run.read_state())) if h.code]
    if answering:
        raise BackupError(f"services are running ({', '.join(answering)}): stop them first (deploy/README.md, Backups)")


class paused_services:
    """The local stack's services stopped by its supervisor for the duration (nothing to do when
    no local supervisor runs: the operator stopped the services, as deploy/README.md says)."""

    def __init__(self, console: Console) -> None:
        self.run = RunDir.from_env()
        self.console = console
        self.active = False

    async def __aenter__(self) -> paused_services:
        if self.run.supervisor_process() is None:
            await _refuse_running_services(self.run)
            return self
        self.run.pause_file.touch()
        self.active = True
        deadline = time.monotonic() + PAUSE_TIMEOUT_S
        with self.console.status("stopping the services (the supervisor keeps NATS and PostgreSQL running)"):
            while not ((state := self.run.read_state()) and state.paused):
                if time.monotonic() > deadline:
                    raise BackupError(f"the services did not stop within {PAUSE_TIMEOUT_S:.0f} s")
                await asyncio.sleep(0.2)
        return self

    async def __aexit__(self, *_: Any) -> None:
        if self.active:
            self.run.pause_file.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the commands
def backup_command(output: Path | None, console: Console) -> int:
    """`tradebus backup`: the exit code (1 with one line saying why when it could not be taken)."""
    start = time.monotonic()
    try:
        path = archive_path(output or default_output(), datetime.now(UTC))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackupError(f"cannot write an archive to {path}: {exc.strerror}") from None
        manifest = asyncio.run(backup(Target.from_env(), path, console))
    except (*EXPECTED, OSError) as exc:
        console.print(f"[bold red]backup failed: {_reason(exc)}[/]", soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        console.print("backup interrupted; no archive written")
        return 130
    messages = sum(int(s.state.get("messages", 0)) for s in manifest.streams.values())
    console.print(
        f"backup written to {path} ({path.stat().st_size / 1e6:.1f} MB, {len(manifest.streams)} streams, "
        f"{messages} messages, {len(manifest.schemas)} schemas) in {time.monotonic() - start:.1f} s"
    )
    return 0


def restore_command(source: Path, force: bool, console: Console) -> int:
    """`tradebus restore ARCHIVE`: the exit code (1 with one line saying why when it refused or failed)."""
    from tradebus_cli import stack

    start = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="tradebus-restore-") as work:
            with console.status(f"checking {source}"):
                manifest = archive.read(source, Path(work))
            check_schemas(manifest, source)
            target = Target.from_env()
            restored = asyncio.run(restore(target, manifest, Path(work), force=force, console=console))
    except (*EXPECTED, OSError) as exc:
        verdict = "failed" if isinstance(exc, RestoreFailed) else "refused"
        console.print(f"[bold red]restore {verdict}: {_reason(exc)}[/]", soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        console.print("restore interrupted; the target may be partly restored (run again with --force)")
        return 130
    console.print(
        f"restored {sum(restored.values())} messages in {len(restored)} streams and {len(manifest.schemas)} schemas "
        f"from the backup of {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC in {time.monotonic() - start:.1f} s"
    )
    run = RunDir.from_env()
    if run.supervisor_process() is not None:
        return stack.wait_ready(console, run)
    console.print("no local supervisor: start the services now (they resume from the restored state)")
    return 0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc)
