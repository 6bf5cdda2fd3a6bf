"""`tradebus backup` / `restore` say no in one line, exit 1, and touch nothing: no bus, a target
holding data, services running with no supervisor to pause them (even with `--force`).

Against this test's own nats-server (auth on: backup logs in as `reader`, restore as `admin`) and
database; the whole round trip through two stacks is test_backup_restore.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from stack_cli import cli

from tradebus import db
from tradebus.bus import ensure_streams
from tradebus.embedded import free_port
from tradebus.settings import SERVICES


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
    assert archive.is_file()

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
