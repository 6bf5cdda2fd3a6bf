"""The sliding windows, in Redis and in-process: the same answers, and a window that slides."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tradebus.embedded import free_port
from tradebus.ratelimit import Limits, RateLimiter, token_id
from tradebus.redislink import RedisLink
from tradebus.testing import wait_for
from tradebus.testing.redisserver import RedisServer


@pytest.fixture(params=["redis", "in-process"])
async def link(request: pytest.FixtureRequest, private_redis: RedisServer) -> AsyncIterator[RedisLink]:
    url = private_redis.url if request.param == "redis" else f"redis://127.0.0.1:{free_port()}/0"
    link = RedisLink(url)
    yield link
    await link.close()


async def test_a_full_window_refuses_until_its_oldest_request_leaves(link: RedisLink) -> None:
    limiter = RateLimiter("svc", Limits(window_s=1.0, per_client=3, per_token=2), link)
    assert [(await limiter.admit("10.0.0.1", None)).allowed for _ in range(4)] == [True, True, True, False]
    refused = await limiter.admit("10.0.0.1", None)
    assert not refused.allowed and refused.retry_after_s == 1
    assert refused.shared is (link.up is True)
    assert (await limiter.admit("10.0.0.2", None)).allowed  # another client has its own window

    async def slid() -> bool:
        return (await limiter.admit("10.0.0.1", None)).allowed

    await wait_for(slid, timeout=5, what="the window sliding past the first requests")


async def test_a_token_window_is_shared_by_every_address_and_all_or_nothing(link: RedisLink) -> None:
    limiter = RateLimiter("svc", Limits(window_s=60, per_client=1, per_token=2), link)
    bearer = "Bearer t0ken"
    assert (await limiter.admit("10.0.0.1", bearer)).allowed
    assert (await limiter.admit("10.0.0.2", bearer)).allowed
    assert not (await limiter.admit("10.0.0.3", bearer)).allowed
    assert (await limiter.admit("10.0.0.3", None)).allowed  # the refused request did not count for its client
    assert token_id(bearer) == token_id("bearer  t0ken ") and token_id("Basic x") is None


async def test_no_limit_configured_admits_everything_without_redis(link: RedisLink) -> None:
    limiter = RateLimiter("svc", Limits(window_s=60, per_client=0, per_token=0), link)
    assert all([(await limiter.admit("10.0.0.1", "Bearer x")).allowed for _ in range(50)])
    assert link.up is None  # never asked
