"""The console's latest-state snapshot in Redis: a restarted or second console serves it at once.

One JSON value under one key, rewritten at most every `console_snapshot_interval_s` while the
state changes; without Redis nothing is written and `load` answers None (the state is rebuilt
from the services' APIs instead).
"""

from __future__ import annotations

from typing import Any

import orjson

from tradebus.redislink import RedisLink


class SnapshotStore:
    def __init__(self, link: RedisLink, key: str) -> None:
        self.link = link
        self.key = key

    async def load(self) -> dict[str, Any] | None:
        raw = await self.link.call(lambda r: r.get(self.key))
        if not raw:
            return None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    async def save(self, state: dict[str, Any]) -> bool:
        return await self.link.call(lambda r: r.set(self.key, orjson.dumps(state))) is not None
