"""`tradebus tail` and `tradebus replay` as processes on the test run's NATS."""

from __future__ import annotations

import asyncio
import os
import sys
from decimal import Decimal
from pathlib import Path

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg

from tradebus.events import BarEvent, BarSource, make_bar
from tradebus.testing import wait_for

TRADEBUS = str(Path(sys.executable).parent / "tradebus")


def _env(nats_url: str) -> dict[str, str]:
    return {**os.environ, "NATS_URL": nats_url, "COLUMNS": "200", "TRADEBUS_RUN_DIR": "/nonexistent"}


async def test_tail_prints_count_events_then_exits(nats_url: str, nc: Client) -> None:
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, "tail", "bars.>", "--count", "2", env=_env(nats_url), stdout=asyncio.subprocess.PIPE
    )
    bar = make_bar(
        "ETHUSDT", "1m", 1_704_067_200_000, Decimal("2300"), Decimal("2310"), Decimal("2290"), Decimal("2305"),
        Decimal("10"), Decimal("23000"), 5, BarSource.SYNTHETIC,
    )  # fmt: skip
    payload = BarEvent.of(bar, source="ingest").model_dump_json().encode()
    output = b""

    async def publish_until_done() -> None:
        while process.returncode is None:  # until tail has subscribed and seen both
            await nc.publish("bars.1m.ETHUSDT", payload)
            await nc.publish("other.subject", b"ignored")
            await nc.flush()
            await asyncio.sleep(0.2)

    publisher = asyncio.create_task(publish_until_done())
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    await publisher
    assert process.returncode == 0
    lines = output.decode().splitlines()
    assert len(lines) == 2
    assert all("bars.1m.ETHUSDT bar.closed ETHUSDT 1m 2024-01-01T00:00:00Z O=2300 H=2310" in line for line in lines)


async def test_tail_without_a_bus_says_so_without_the_password() -> None:
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, "tail", ">", env=_env("nats://reader:s3cret@127.0.0.1:1"), stdout=asyncio.subprocess.PIPE
    )
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 1
    assert b"cannot reach NATS at nats://127.0.0.1:1" in output and b"s3cret" not in output


async def test_tail_reads_as_the_reader_which_may_not_watch_anothers_replies(nats_url: str) -> None:
    """`tail` logs in as `reader` (the admin in NATS_URL is not used): another user's inbox is refused."""
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, "tail", "_INBOX_ingest.>", env=_env(nats_url), stdout=asyncio.subprocess.PIPE
    )
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 1, output
    assert b"refused the subscription to '_INBOX_ingest.>'" in output


async def test_a_refused_login_says_so_at_once_without_the_password(nats_url: str) -> None:
    env = {**_env(nats_url), "NATS_PASSWORD": "not-the-password"}
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, "tail", "bars.>", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 1, output
    assert b"refused user 'reader'" in output and b"Traceback" not in output, output
    assert b"NATS at nats://127.0.0.1:" in output
    password = nats_url.split("//", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password.encode() not in output


async def test_replay_publishes_every_row_as_a_replayed_1m_bar(nats_url: str, nc: Client, data_dir: Path) -> None:
    received: list[Msg] = []

    async def collect(msg: Msg) -> None:
        received.append(msg)

    await nc.subscribe("bars.1m.ADABTC", cb=collect)
    source = data_dir / "ADABTC-1m-2021-11-27.csv"
    rows = len(source.read_text().splitlines())
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, "replay", str(source), "--speed", "max", env=_env(nats_url), stdout=asyncio.subprocess.PIPE
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, output.decode()
    assert f"{rows} bars published from 1 file(s), 0 rows rejected" in output.decode()

    async def all_received() -> bool:
        return len(received) == rows

    await wait_for(all_received, timeout=10, what="every replayed bar on bars.1m.ADABTC")
    first = orjson.loads(received[0].data)
    assert (first["mode"], first["source"], first["data"]["open_time"]) == (
        "replay",
        "ingest",
        "2021-11-27T00:00:00Z",
    )


async def test_replay_refuses_a_missing_file(nats_url: str, tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, "replay", str(tmp_path / "nope.csv"), env=_env(nats_url), stdout=asyncio.subprocess.PIPE
    )
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 1
    assert b"kline file not found" in output
