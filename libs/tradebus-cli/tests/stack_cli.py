"""The `tradebus` command as a process, for the tests that run whole local stacks."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import httpx

from tradebus.settings import PROCESSES

TRADEBUS = str(Path(sys.executable).parent / "tradebus")


def missing_services() -> list[str]:
    return [s for s in PROCESSES if importlib.util.find_spec(f"tradebus_{s}.__main__") is None]


async def cli(*args: str, env: dict[str, str], timeout: float = 90.0) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def ready(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(f"{url}/health/ready")).status_code == 200
    except httpx.HTTPError:
        return False
