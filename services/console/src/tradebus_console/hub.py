"""Fan-out of deltas to connected browsers (server-sent events): one bus subscription, any number of tabs.

Each delta is encoded once and put on every client's bounded queue; a client that falls
`MAX_QUEUED` behind is dropped (its browser reconnects and gets the whole state again), so a
slow tab never holds the others back nor grows the console's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import orjson

from tradebus_console import metrics

MAX_QUEUED: Final = 1000
KEEPALIVE_S: Final = 15.0


def sse(kind: str, data: Any) -> bytes:
    """One server-sent event (`event:` and a single-line JSON `data:`)."""
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Hub:
    def __init__(self, coalesce_s: float = 0.0) -> None:
        self.coalesce_s = coalesce_s
        """How long a client's first pending delta waits for others to share its write: each write
        is a system call, and those dominate the console's CPU per event (docs/BENCHMARKS.md)."""
        self._clients: set[asyncio.Queue[bytes | None]] = set()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, delta: dict[str, Any]) -> None:
        """Queue `delta` for every connected client (encoded once)."""
        if not self._clients:
            return
        frame = sse("delta", delta)
        for queue in list(self._clients):
            try:
                queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._drop(queue)
                metrics.DROPPED_CLIENTS.inc()
        metrics.PUSHED.inc(len(self._clients))

    def _drop(self, queue: asyncio.Queue[bytes | None]) -> None:
        """Stop feeding `queue`; its stream ends once it reads the end marker."""
        self._clients.discard(queue)
        while not queue.empty():  # what it has not read is stale: it reconnects for a snapshot
            queue.get_nowait()
        queue.put_nowait(None)

    async def stream(self, snapshot: Callable[[], dict[str, Any]]) -> AsyncIterator[bytes]:
        """A client's events: the whole state at once, then every delta, with keep-alive comments."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(MAX_QUEUED)
        self._clients.add(queue)  # no await before the snapshot: no delta falls between, none twice
        metrics.CLIENTS.set(len(self._clients))
        try:
            yield sse("snapshot", snapshot())
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if frame is not None and self.coalesce_s > 0:
                    await asyncio.sleep(self.coalesce_s)
                frames = [frame]
                while not queue.empty():  # whatever queued meanwhile goes in the same chunk
                    frames.append(queue.get_nowait())
                if None in frames:
                    return
                yield b"".join(frames)  # type: ignore[arg-type]
        finally:
            self._clients.discard(queue)
            metrics.CLIENTS.set(len(self._clients))

    def close(self) -> None:
        """End every stream (shutdown): browsers reconnect to whichever console answers."""
        for queue in list(self._clients):
            self._drop(queue)
