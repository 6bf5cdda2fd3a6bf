"""`tradebus backup` / `restore` say no in one line, exit 1, and touch nothing: no bus, no schema,
a target holding data, services running with no supervisor to pause them (even with `--force`),
a stack that never stops publishing; and a restore failing after it began says so.

Against this test's own nats-server (auth on: backup logs in as `reader`, restore as `admin`) and
database; the whole round trip through two stacks is test_backup_restore.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import nats
import pytest
from nats.aio.client import Client
from stack_cli import cli

from tradebus import db
from tradebus.bus import ensure_streams
from tradebus.embedded import free_port
from tradebus.settings import SERVICES
from tradebus_cli.backup.postgres import PostgresToolError, find_tools


@pytest.fixture
async def bus(private_nats_url: str) -> AsyncIterator[Client]:
    nc = await nats.connect(private_nats_url)
    yield nc
    await nc.close()


async def _answer_anything(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    await writer.drain()
    writer.close()


def _one_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


async def test_refusals_are_one_line_and_change_nothing(
    private_nats_url: str, database_url: str, bus: Client, tmp_path: Path
) -> None:
    js = bus.jetstream()
    await ensure_streams(js)
    for minute in range(3):
        await js.publish("bars.1m.BTCUSDT", b"{}", headers={"Nats-Msg-Id": f"bar-{minute}"})
    pool = await db.create_pool(database_url, schema="ingest")
    try:
        await db.migrate(pool, "ingest", "tradebus_ingest.migrations")
    finally:
        await pool.close()
    ports = {s: free_port() for s in SERVICES}
    env = {
        **os.environ,
        "NATS_URL": private_nats_url,
        "DATABASE_URL": database_url,
        "TRADEBUS_RUN_DIR": str(tmp_path / "run"),  # no supervisor there
        "COLUMNS": "80",  # narrow: a long refusal must still be one line
        **{f"TRADEBUS_{s.upper()}_PORT": str(p) for s, p in ports.items()},
    }
    archive = tmp_path / "backup.tar"
    code, output = await cli("backup", "--output", str(archive), env=env)
    assert code == 0, output
    with tarfile.open(archive) as tar:
        handle = tar.extractfile("manifest.json")
        assert handle is not None
        manifest = json.loads(handle.read())
    assert urlsplit(private_nats_url).password not in json.dumps(manifest)
    assert manifest["nats_url"].startswith("nats://admin:***@")
    assert manifest["streams"]["BARS"]["state"]["messages"] == 3 and manifest["schemas"]["ingest"] >= 2

    code, output = await cli("restore", str(archive), env=env)
    assert code == 1 and "not empty" in _one_line(output) and "stream BARS (3 messages)" in output, output

    server = await asyncio.start_server(_answer_anything, "127.0.0.1", ports["risk"])
    try:
        code, output = await cli("restore", str(archive), "--force", env=env)
    finally:
        server.close()
        await server.wait_closed()
    assert code == 1 and "services are running (risk)" in _one_line(output), output
    assert (await js.stream_info("BARS")).state.messages == 3

    dead = {**env, "NATS_URL": f"nats://127.0.0.1:{free_port()}"}
    code, output = await cli("backup", "--output", str(tmp_path / "other.tar"), env=dead)
    assert code == 1 and "cannot reach NATS" in _one_line(output), output
    assert not (tmp_path / "other.tar").exists()

    spoilt = _with_dump(archive, tmp_path / "spoilt.tar", b"not a pg_dump archive")
    code, output = await cli("restore", str(spoilt), "--force", env=env)
    assert code == 1 and "restore failed: the target is partly restored" in _one_line(output), output


def _with_dump(source: Path, target: Path, dump: bytes) -> Path:
    """A copy of the archive with another postgres.dump, its checksums made to match: it passes
    every check and fails only when pg_restore reads it."""
    with tarfile.open(source) as tar:
        members = {m.name: (m, tar.extractfile(m).read()) for m in tar}  # type: ignore[union-attr]
    manifest = json.loads(members["manifest.json"][1])
    manifest["files"]["postgres.dump"] = {"bytes": len(dump), "sha256": hashlib.sha256(dump).hexdigest()}
    body = json.dumps(manifest).encode()
    contents = {
        "manifest.json": body,
        "postgres.dump": dump,
        "manifest.sha256": hashlib.sha256(body).hexdigest().encode(),
    }
    with tarfile.open(target, "w") as out:
        for name, (member, data) in members.items():
            content = contents.get(name, data)
            member.size = len(content)
            out.addfile(member, io.BytesIO(content))
    return target


async def test_a_backup_taken_while_events_keep_coming_is_taken_again_then_refused(
    private_nats_url: str, database_url: str, bus: Client, tmp_path: Path
) -> None:
    """A publish between the stream snapshots and the dump would leave the bus behind the database:
    the backup is taken again, and refused when the stack never stops publishing."""
    js = bus.jetstream()
    await ensure_streams(js)
    stop = asyncio.Event()

    async def publish() -> None:
        minute = 0
        while not stop.is_set():
            await js.publish("bars.1m.BTCUSDT", b"{}", headers={"Nats-Msg-Id": f"bar-{minute}"})
            minute += 1
            await asyncio.sleep(0.005)

    env = {**os.environ, "NATS_URL": private_nats_url, "DATABASE_URL": database_url, "COLUMNS": "200"}
    code, output = await cli("backup", "--output", str(tmp_path / "nothing.tar"), env=env)
    assert code == 1 and "holds no tradebus schema" in _one_line(output), output
    pool = await db.create_pool(database_url, schema="risk")
    try:
        await db.migrate(pool, "risk", "tradebus_risk.migrations")
    finally:
        await pool.close()
    publisher = asyncio.create_task(publish())
    try:
        code, output = await cli("backup", "--output", str(tmp_path / "busy.tar"), env=env)
    finally:
        stop.set()
        await publisher
    assert code == 1, output
    assert output.count("taking it again") == 3 and "kept publishing during 3 attempts" in output, output
    assert not (tmp_path / "busy.tar").exists()


def test_no_fitting_pg_dump_names_what_to_install() -> None:
    with pytest.raises(PostgresToolError, match=r"no pg_dump/pg_restore for PostgreSQL 99 .*postgresql-client-99"):
        find_tools(99)
    assert find_tools(15).major >= 15
