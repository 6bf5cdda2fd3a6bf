"""The console with Redis: its snapshot survives a kill, limits hold across two processes, and
without Redis it keeps serving (readiness `degraded`, limits in-process), never down.

Real processes, a private nats-server (auth on, the console as its own user) and a redis-server
of the test's own; no service API answers, so whatever a restarted console shows came from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import orjson
import pytest
import redis.asyncio as aioredis
from consoleproc import ConsoleProcess, dead_url
from events import signal_event

from tradebus.testing import wait_for
from tradebus.testing.redisserver import RedisServer

SNAPSHOT_KEY = "tradebus:console:snapshot"


def console_env(nats_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "NATS_URL": nats_url.rsplit("@", maxsplit=1)[-1] if "@" in nats_url else nats_url,
        "REDIS_URL": redis_url,
        "SYMBOLS": "BTCUSDT",
        **{f"CONSOLE_{s.upper()}_URL": dead_url() for s in ("aggregator", "risk", "telemetry", "rollup")},
        **extra,
    }


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def publish_signal(nats_url: str, symbol: str, n: int) -> str:
    """A signal on core NATS (no stream exists here: only a live console can see it)."""
    event = signal_event(symbol, n)
    nc = await nats.connect(nats_url)
    try:
        await nc.publish(f"signals.{symbol}", event.model_dump_json().encode())
        await nc.flush()
    finally:
        await nc.close()
    return event.event_id


async def shown(http: httpx.AsyncClient, console: ConsoleProcess, symbol: str) -> str | None:
    state = (await http.get(f"{console.url}/v1/console/state")).json()
    return state["signals"].get(symbol, {}).get("event_id")


async def first_stream_event(http: httpx.AsyncClient, url: str) -> tuple[str, dict[str, object]]:
    async with http.stream("GET", f"{url}/v1/console/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                return kind, orjson.loads(line.removeprefix("data: "))
    raise AssertionError("the stream ended before its first event")


async def test_a_killed_console_restarts_serving_its_redis_snapshot(
    private_nats_url: str, private_redis: RedisServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    env = console_env(private_nats_url, private_redis.url)
    first = await ConsoleProcess(tmp_path, env, "first").start()
    try:
        await wait_for(lambda: _subscribed(http, first), timeout=30, what="the console following the bus")
        event_id = await publish_signal(private_nats_url, "BTCUSDT", 1)
        await wait_for(lambda: _is(shown(http, first, "BTCUSDT"), event_id), timeout=10, what="the signal shown")
        redis = aioredis.Redis.from_url(private_redis.url)
        try:

            async def saved() -> bool:
                raw = await redis.get(SNAPSHOT_KEY)
                return raw is not None and orjson.loads(raw)["signals"].get("BTCUSDT", {}).get("event_id") == event_id

            await wait_for(saved, timeout=10, what="the snapshot in redis")
        finally:
            await redis.aclose()
    finally:
        first.kill()

    second = await ConsoleProcess(tmp_path, env, "second").start()
    try:
        # before any new event: the state is Redis's, at once, on the API and on a new stream
        state = (await http.get(f"{second.url}/v1/console/state")).json()
        assert state["source"] == "redis"
        assert state["signals"]["BTCUSDT"]["event_id"] == event_id
        assert state["signals"]["BTCUSDT"]["consensus"]["agreement_score"] == "0.6667"
        kind, snapshot = await first_stream_event(http, second.url)
        assert kind == "snapshot"
        assert snapshot["signals"]["BTCUSDT"]["event_id"] == event_id  # type: ignore[index]
    finally:
        assert second.stop() in (0, -15)


async def test_sigterm_ends_open_streams_at_once(
    private_nats_url: str, private_redis: RedisServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """uvicorn waits for open answers before it shuts down (20 s); a live stream never ends by itself."""
    console = await ConsoleProcess(tmp_path, console_env(private_nats_url, private_redis.url)).start()
    ended = asyncio.Event()

    async def listen() -> None:
        async with http.stream("GET", f"{console.url}/v1/console/stream") as response:
            async for _ in response.aiter_lines():
                pass
        ended.set()

    task = asyncio.create_task(listen())
    try:
        await wait_for(lambda: _clients(http, console, 1), timeout=10, what="the stream open")
        assert console.process is not None
        console.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(ended.wait(), timeout=5)
        assert console.process.wait(10) in (0, -signal.SIGTERM)
    finally:
        task.cancel()
        console.stop()


async def _clients(http: httpx.AsyncClient, console: ConsoleProcess, n: int) -> bool:
    return f"tradebus_console_clients {n}.0" in (await http.get(f"{console.url}/metrics")).text


async def test_without_redis_the_console_keeps_serving_degraded_with_limits_in_process(
    private_nats_url: str, private_redis: RedisServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    env = console_env(private_nats_url, private_redis.url, RATE_LIMIT_PER_CLIENT="20", RATE_LIMIT_WINDOW_S="60")
    console = await ConsoleProcess(tmp_path, env).start()
    try:
        await wait_for(lambda: _subscribed(http, console), timeout=30, what="the console following the bus")
        assert (await _redis_check(http, console))["ok"] is True
        private_redis.stop()

        async def redis_down() -> bool:
            return (await _redis_check(http, console))["ok"] is False

        await wait_for(redis_down, timeout=15, what="readiness naming redis down")
        ready = await http.get(f"{console.url}/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"  # degraded, never down
        assert "unreachable" in ready.json()["checks"]["redis"]["detail"]

        event_id = await publish_signal(private_nats_url, "BTCUSDT", 2)  # still follows the bus
        await wait_for(lambda: _is(shown(http, console, "BTCUSDT"), event_id), timeout=10, what="the signal shown")

        statuses = [(await http.get(f"{console.url}/v1/console/state")).status_code for _ in range(25)]
        assert 429 in statuses, "no limit applied while redis is down"
        refused = await http.get(f"{console.url}/v1/console/state")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert (await http.get(f"{console.url}/health/live")).status_code == 200  # probes are never limited

        private_redis.start()  # same port, empty: it comes back, and the snapshot is written again

        async def redis_back() -> bool:
            return (await _redis_check(http, console))["ok"] is True

        await wait_for(redis_back, timeout=15, what="readiness naming redis up again")
    finally:
        assert console.stop() in (0, -15)


@contextlib.asynccontextmanager
async def two_consoles(
    nats_url: str, redis: RedisServer, logs: Path, per_client: int, per_token: int
) -> AsyncIterator[tuple[ConsoleProcess, ConsoleProcess]]:
    """Two console processes sharing one Redis, with a minute's window of the given limits."""
    limits = {"RATE_LIMIT_PER_CLIENT": str(per_client), "RATE_LIMIT_PER_TOKEN": str(per_token)}
    env = console_env(nats_url, redis.url, RATE_LIMIT_WINDOW_S="60", **limits)
    a = await ConsoleProcess(logs, env, "a").start()
    b = await ConsoleProcess(logs, env, "b").start()
    try:
        yield a, b
    finally:
        assert a.stop() in (0, -15)
        assert b.stop() in (0, -15)


async def test_rate_limits_hold_across_two_console_processes(
    private_nats_url: str, private_redis: RedisServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Each process alone would allow 10 a minute; together they allow 10, because Redis holds the window."""
    async with two_consoles(private_nats_url, private_redis, tmp_path, per_client=10, per_token=4) as (a, b):
        statuses = []
        for n in range(10):
            statuses.append((await http.get(f"{(a if n % 2 else b).url}/v1/console/state")).status_code)
        assert statuses == [200] * 10
        for console in (a, b):
            refused = await http.get(f"{console.url}/v1/console/state")
            assert refused.status_code == 429, "the other process's requests did not count"
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            assert (await http.get(f"{console.url}/metrics")).status_code == 200  # scrapes are never limited


async def test_a_token_has_its_own_window_across_processes(
    private_nats_url: str, private_redis: RedisServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with two_consoles(private_nats_url, private_redis, tmp_path, per_client=1000, per_token=4) as (a, b):
        token = {"Authorization": "Bearer not-a-real-token"}
        statuses = [(await http.get(f"{c.url}/v1/console/state", headers=token)).status_code for c in (a, b, a, b, a)]
        assert statuses == [200, 200, 200, 200, 429]
        assert (await http.get(f"{b.url}/v1/console/state")).status_code == 200  # the client, without the token
        other = {"Authorization": "Bearer another-token"}
        assert (await http.get(f"{b.url}/v1/console/state", headers=other)).status_code == 200
        raw_keys = await _redis_keys(private_redis.url)
        assert not any(b"not-a-real-token" in key for key in raw_keys), "a token was stored in redis"


async def _redis_keys(url: str) -> list[bytes]:
    redis = aioredis.Redis.from_url(url)
    try:
        return [key async for key in redis.scan_iter("*")]
    finally:
        await redis.aclose()


async def _redis_check(http: httpx.AsyncClient, console: ConsoleProcess) -> dict[str, object]:
    body = (await http.get(f"{console.url}/health/ready")).json()
    check: dict[str, object] = body["checks"]["redis"]
    return check


async def _subscribed(http: httpx.AsyncClient, console: ConsoleProcess) -> bool:
    body = (await http.get(f"{console.url}/health/ready")).json()
    return bool(body["checks"]["bus"]["ok"])


async def _is(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc]
