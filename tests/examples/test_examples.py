"""The files under examples/ run as written, against a real bus with auth on."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from pathlib import Path

import nats

from tradebus.events import BarEvent, BarSource, Mode, make_bar
from tradebus.natsauth import READER, Credentials, strip_userinfo

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _bar(minute: int) -> BarEvent:
    open_ms = 1_700_000_100_000 - 1_700_000_100_000 % 300_000 + minute * 300_000
    bar = make_bar(
        "BTCUSDT",
        "5m",
        open_ms,
        Decimal("100"),
        Decimal("101"),
        Decimal("99"),
        Decimal(f"100.{minute}"),
        Decimal("2"),
        Decimal("200"),
        3,
        BarSource.AGGREGATED,
    )
    return BarEvent.of(bar, source="aggregator", mode=Mode.LIVE)


async def test_subscribe_bars_prints_live_bars(nats_url: str, nats_credentials: Credentials) -> None:
    url = strip_userinfo(nats_url)
    script = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "subscribe_bars.py"),
        "--url",
        url,
        "--password-file",
        str(nats_credentials.password_file(READER)),
        "--count",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert script.stdout is not None
    first = await asyncio.wait_for(script.stdout.readline(), timeout=30)
    assert first.startswith(b"listening on bars.5m.BTCUSDT"), first
    admin = await nats.connect(nats_url)
    try:
        for minute in (1, 2):
            await admin.publish("bars.5m.BTCUSDT", _bar(minute).model_dump_json().encode())
        await admin.flush()
        out, err = await asyncio.wait_for(script.communicate(), timeout=30)
    finally:
        await admin.close()
    assert script.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert [line.split(" close ")[1] for line in lines] == ["100.1", "100.2"], lines
    assert all(line.startswith("BTCUSDT 5m ") for line in lines), lines


async def test_subscribe_bars_without_a_stack_says_so_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "reader.password"
    script = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "subscribe_bars.py"),
        "--password-file",
        str(missing),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"},
    )
    _, err = await asyncio.wait_for(script.communicate(), timeout=30)
    assert script.returncode == 1
    assert err.decode().strip().startswith("cannot read the reader's password"), err
    assert "Traceback" not in err.decode()
