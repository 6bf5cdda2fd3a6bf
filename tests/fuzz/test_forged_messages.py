"""Forged, malformed and out-of-range messages on every subject a service consumes, sent to the
running services: nothing stored anywhere changes, every message is dead-lettered by every service
that consumes its subject (counted), and every service stays ready.

`test_each_rule_on_the_running_services` sends one message per rule and checks the reason;
`test_fuzzed_messages_change_nothing` lets hypothesis combine the mutations.
"""

from __future__ import annotations

import asyncio
import copy
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

sys.path.insert(0, str(Path(__file__).parent))
from stack import CONSUMERS, SUBJECTS, SYMBOLS, VALID, Stack, stack

Mutation = Callable[[dict[str, Any]], bytes]

READ_BY_ALL: dict[str, tuple[str, ...]] = {
    "bar_1m": ("symbol", "interval", "open_time", "open", "high", "low", "close"),  # risk reads only these
    "bar_5m": ("symbol", "interval", "open_time", "close_time", "open", "high", "low", "close", "volume", "trades"),
    "signal": ("symbol", "interval", "bar_time", "price", "state", "direction", "confidence", "model"),
    "trade": ("trade_id", "symbol", "quantity", "entry_price", "exit_price", "entry_time", "exit_time", "net_pnl"),
    "heartbeat": ("service", "instance", "started_at", "status"),
}
"""Required fields that every consumer of the kind decodes (risk decodes a bar's prices and times
only, so a bar with, say, a negative volume is refused by the aggregator and telemetry alone)."""

TIMES = {"bar_1m": "open_time", "bar_5m": "open_time", "signal": "bar_time", "trade": "exit_time", "heartbeat": None}


def _dump(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def _data(message: dict[str, Any], **changes: Any) -> bytes:
    out = copy.deepcopy(message)
    out["data"].update(changes)
    return _dump(out)


def _envelope(**changes: Any) -> Mutation:
    return lambda message: _dump(message | changes)


def _iso(year: int) -> str:
    return f"{year:04d}-01-01T00:00:00Z"


def _minute_of(year: int) -> dict[str, str]:
    """The times of the year's first 1m bar."""
    return {"open_time": _iso(year), "close_time": f"{year:04d}-01-01T00:00:59.999Z"}


# ------------------------------------------------------------------ one message per rule
RULES: list[tuple[str, str, Mutation, str]] = [
    ("bar_1m", "1 MiB of extra fields", _envelope(padding="x" * ((1 << 20) - 4096)), "too_large"),
    ("bar_1m", "not JSON", lambda m: b"\xff{not json", "malformed"),
    ("bar_1m", "empty", lambda m: b"", "malformed"),
    ("bar_1m", "truncated", lambda m: _dump(m)[:-7], "malformed"),
    ("bar_1m", "schema version 2", _envelope(schema_version=2), "schema_version"),
    ("bar_1m", "high below low", lambda m: _data(m, high="98", low="200"), "malformed"),
    ("bar_1m", "a symbol nobody configured", lambda m: _data(m, symbol="DOGEUSDT"), "symbol"),
    ("bar_1m", "live, dated 1970", lambda m: _data(m, **_minute_of(1970)), "event_time"),
    ("bar_1m", "replayed, dated 9999", lambda m: _data(m | {"mode": "replay"}, **_minute_of(9999)), "event_time"),
    ("bar_1m", "misaligned", lambda m: _data(m, open_time=m["data"]["open_time"][:17] + "30Z"), "malformed"),
    ("bar_5m", "negative volume", lambda m: _data(m, volume="-1"), "malformed"),
    ("bar_5m", "close above high", lambda m: _data(m, close="500"), "malformed"),
    ("bar_5m", "another event's type", _envelope(event_type="trade.closed"), "event_type"),
    ("signal", "price zero", lambda m: _data(m, price="0"), "malformed"),
    ("signal", "incoherent plan", lambda m: _data(m, plan=m["data"]["plan"] | {"stop": "101"}), "malformed"),
    ("signal", "a symbol nobody configured", lambda m: _data(m, symbol="DOGEUSDT"), "symbol"),
    ("signal", "dated 9999", lambda m: _data(m, bar_time=_iso(9999)), "event_time"),
    ("trade", "dated 9999", lambda m: _data(m, exit_time=_iso(9999)), "event_time"),
    ("trade", "exit before entry", lambda m: _data(m, entry_time=_iso(2030)), "malformed"),
    ("trade", "negative price", lambda m: _data(m, exit_price="-5"), "malformed"),
    ("heartbeat", "for another service", lambda m: _data(m, service="aggregator"), "malformed"),
    ("heartbeat", "started in 9999", lambda m: _data(m, started_at=_iso(9999)), "event_time"),
]


def _dlq_metric(service: str, reason: str) -> float:
    return REGISTRY.get_sample_value("tradebus_dlq_messages_total", {"service": service, "reason": reason}) or 0.0


async def test_each_rule_on_the_running_services(private_nats_url: str, database_url: str) -> None:
    async with stack(private_nats_url, database_url) as s:
        before = await s.snapshot()
        expected: Counter[str] = Counter()
        for kind, name, mutate, reason in RULES:
            consumers = CONSUMERS[kind]
            counted = {service: _dlq_metric(service, reason) for service in consumers}
            seen = len(s.letters)
            await s.send(kind, mutate(VALID[kind]()))
            expected.update(consumers)
            await s.until_dead_letters(expected)
            got = {(letter["service"], letter["reason"]) for letter in s.letters[seen:]}
            assert got == {(service, reason) for service in consumers}, (name, s.letters[seen:])
            assert {service: _dlq_metric(service, reason) for service in consumers} == {
                service: counted[service] + 1 for service in consumers
            }, name
        await s.all_ready()
        assert await s.snapshot() == before
        assert s.dead_letters == expected


# ------------------------------------------------------------------ hypothesis
def _mutations(kind: str) -> st.SearchStrategy[Mutation]:
    """Each strategy yields a change that makes any valid `kind` event invalid for every consumer."""
    read = READ_BY_ALL[kind]
    time_field = TIMES[kind]
    garbage = st.binary(max_size=300).map(lambda raw: lambda m: raw)
    truncated = st.floats(0.0, 0.99).map(lambda f: lambda m: (p := _dump(m))[: int(len(p) * f)])
    version = st.integers(2, 2**31).map(lambda v: _envelope(schema_version=v))
    event_type = st.text(max_size=30).map(lambda t: _envelope(event_type=t + "?"))
    emitted = st.integers(2100, 9999).map(lambda y: _envelope(emitted_at=_iso(y)))
    oversized = st.integers(33 * 1024, 300 * 1024).map(lambda n: _envelope(padding="x" * n))
    dropped = st.sampled_from(read).map(lambda key: lambda m: _dump(m | {"data": {k: v for k, v in m["data"].items()
                                                                                    if k != key}}))  # fmt: skip
    wrong_type = st.tuples(st.sampled_from(read), st.sampled_from([{"x": 1}, [1, 2], None, True])).map(
        lambda kv: lambda m: _data(m, **{kv[0]: kv[1]})
    )
    foreign = st.from_regex(r"[A-Z0-9]{3,12}", fullmatch=True).filter(lambda s: s not in SYMBOLS)
    choices = [garbage, truncated, version, event_type, emitted, oversized, dropped, wrong_type]
    if kind != "heartbeat":
        choices.append(foreign.map(lambda sym: lambda m: _data(m, symbol=sym)))
    if time_field is not None:
        years = st.one_of(st.integers(1, 2008), st.integers(datetime.now(tz=UTC).year + 1, 9999))
        choices.append(years.map(lambda y: lambda m: _data(m, **{time_field: _iso(y)})))
    if kind.startswith("bar"):
        below = st.decimals(min_value=1, max_value=10**6, places=2)
        choices.append(below.map(lambda d: lambda m: _data(m, high=str(d), low=str(d + 1))))
        choices.append(st.integers(1, 59).map(lambda sec: lambda m: _data(m, open_time=m["data"]["open_time"][:17]
                                                                          + f"{sec:02d}Z")))  # fmt: skip
    if kind == "signal":
        choices.append(st.decimals(max_value=0, allow_nan=False).map(lambda d: lambda m: _data(m, price=str(d))))
        choices.append(st.decimals(min_value="1.0001", max_value=10**6, places=4).map(
            lambda d: lambda m: _data(m, confidence=str(d))))  # fmt: skip
    return st.one_of(choices)


messages = st.lists(
    st.sampled_from(sorted(CONSUMERS)).flatmap(lambda kind: st.tuples(st.just(kind), _mutations(kind))),
    min_size=1,
    max_size=4,
)

FUZZ_EXAMPLES = 120


async def test_fuzzed_messages_change_nothing(private_nats_url: str, database_url: str) -> None:
    async with stack(private_nats_url, database_url) as s:
        before = await s.snapshot()
        loop = asyncio.get_running_loop()
        expected: Counter[str] = Counter()

        async def deliver(batch: list[tuple[str, bytes]]) -> None:
            for kind, payload in batch:
                await s.send(kind, payload)
                expected.update(CONSUMERS[kind])
            await s.until_dead_letters(expected)

        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            phases=(Phase.generate,),  # no shrinking: the services keep what earlier examples did
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(messages)
        def fuzz(batch: list[tuple[str, Mutation]]) -> None:
            payloads = [(kind, mutate(VALID[kind]())) for kind, mutate in batch]
            for kind, payload in payloads:
                note(f"{kind}: {payload[:300]!r}")
            asyncio.run_coroutine_threadsafe(deliver(payloads), loop).result(timeout=120)

        await asyncio.to_thread(fuzz)
        await s.all_ready()
        assert s.dead_letters == expected
        assert await s.snapshot() == before
        _check_stack_is_alive(s)


def _check_stack_is_alive(s: Stack) -> None:
    assert set(s.services) == {"aggregator", "signal", "risk", "telemetry", "rollup"}


# ------------------------------------------------------------------ forged by another user
OWNERS: dict[str, str] = {"bar_1m": "ingest", "bar_5m": "aggregator", "signal": "signal", "trade": "risk",
                          "heartbeat": "risk"}  # fmt: skip
"""Who alone may publish each kind on the subject the tests send it to (`stack.SUBJECTS`)."""


async def test_valid_events_forged_by_any_other_user_are_refused_by_the_server(
    private_nats_url: str, database_url: str
) -> None:
    """The other half of "forged": a well-formed event (a BUY signal, a bar, a trade, a heartbeat)
    published by a user that does not own its subject, or by no user at all. The server drops it
    (the publisher sees a refusal, never a timeout to retry), nothing is stored, nothing is even
    dead-lettered, and every service stays ready."""
    import os

    import nats
    import nats.errors
    import pytest

    from tradebus.bus import Publisher, PublishRefused
    from tradebus.natsauth import READER, Credentials, Login, strip_userinfo
    from tradebus.settings import SERVICES

    credentials = Credentials(Path(os.environ["NATS_CREDENTIALS_DIR"]))
    server = strip_userinfo(private_nats_url)
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):  # anonymous: not even a connection
        await nats.connect(server, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)
    async with stack(private_nats_url, database_url) as s:
        before = await s.snapshot()

        async def forge_as(user: str) -> list[str]:
            nc = await nats.connect(server, **Login(user, credentials.password(user)).connect_options())
            refused: list[str] = []
            try:
                publisher = Publisher(nc, user, ack_timeout_s=2.0)
                for kind, owner in OWNERS.items():
                    if owner == user:
                        continue
                    with pytest.raises(PublishRefused, match=r"(?i)permissions violation"):
                        await publisher.publish_raw(SUBJECTS[kind], _dump(VALID[kind]()), f"forged-{user}-{kind}")
                    refused.append(kind)
            finally:
                await nc.close()
            return refused

        users = [*SERVICES, READER]
        refused = dict(zip(users, await asyncio.gather(*(forge_as(u) for u in users)), strict=True))
        assert all(len(kinds) == len([k for k, o in OWNERS.items() if o != user]) for user, kinds in refused.items())
        await s.all_ready()
        assert await s.snapshot() == before
        assert s.letters == [], "refused by the server: no service ever saw them"
