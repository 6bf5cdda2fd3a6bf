import sys
from pathlib import Path

import pytest
from nats.aio.client import Client

from tradebus.bus import Publisher, ensure_streams

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
async def publisher(nc: Client) -> Publisher:
    """A publisher on the test bus, with the contract's streams in place."""
    await ensure_streams(nc.jetstream())
    return Publisher(nc, "ingest")
