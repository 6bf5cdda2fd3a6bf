"""Fixtures for the risk service on a real NATS and PostgreSQL."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import nats
import nats.js.errors
import pytest
from nats.aio.client import Client

from tradebus.bus import ensure_streams

DURABLES = (
    ("SIGNALS", "risk-signals"),
    ("BARS", "risk-bars-1m"),
    ("TELEMETRY", "risk-readiness"),
    ("TELEMETRY", "risk-quality"),
)


@pytest.fixture
async def js_client(nats_url: str) -> AsyncIterator[Client]:
    """A NATS client, with the risk durables removed so that each test's service creates them anew.

    The test run shares one nats-server, so other tests' bars and signals are already in the
    streams; the services under test start their new durables at the end (RISK_DELIVER_POLICY=new).
    """
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await ensure_streams(js)
    for stream, durable in DURABLES:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(stream, durable)
    try:
        yield client
    finally:
        await client.drain()


@pytest.fixture
def symbol(monkeypatch: pytest.MonkeyPatch) -> str:
    """A symbol no other test uses (JetStream de-duplicates equal event ids for 120 s), configured
    (SYMBOLS) for the services the test builds, with its companion `<name>XUSDT`: risk admits
    only configured symbols."""
    name = f"RK{secrets.token_hex(4).upper()}USDT"
    monkeypatch.setenv("SYMBOLS", f"{name},{name[:-4]}XUSDT")
    return name
