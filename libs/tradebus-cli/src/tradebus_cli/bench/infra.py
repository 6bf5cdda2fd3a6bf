"""The bus and database a bench run owns: a private nats-server, a PostgreSQL that can create databases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.js.errors

from tradebus import subjects
from tradebus.embedded import EmbeddedNats, EmbeddedPostgres, postgres_answers
from tradebus.natsauth import ADMIN, Credentials, Login, with_login

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
"""The test suite's default (tradebus.testing.fixtures), not imported: that module needs pytest."""


@contextmanager
def private_nats(work_dir: Path) -> Iterator[str]:
    """A JetStream nats-server on a free port with its store under `work_dir`, stopped on exit;
    with auth on, as a stack runs: the services benched log in as themselves (their passwords
    under `work_dir`, exported as `NATS_CREDENTIALS_DIR`), the URL yielded as `admin`."""
    credentials = Credentials(work_dir / "nats-credentials")
    credentials.generate()
    previous = os.environ.get("NATS_CREDENTIALS_DIR")
    os.environ["NATS_CREDENTIALS_DIR"] = str(credentials.directory)
    server = EmbeddedNats(work_dir / "nats", auth_config=credentials.server_config).start()
    try:
        yield with_login(server.url, Login(ADMIN, credentials.password(ADMIN)))
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("NATS_CREDENTIALS_DIR", None)
        else:
            os.environ["NATS_CREDENTIALS_DIR"] = previous


@contextmanager
def admin_postgres(work_dir: Path) -> Iterator[str]:
    """The configured PostgreSQL (TRADEBUS_TEST_ADMIN_DSN, default 127.0.0.1:5432) when it
    answers, else an embedded one under `work_dir`, as the test suite picks it."""
    configured = os.environ.get("TRADEBUS_TEST_ADMIN_DSN", DEFAULT_ADMIN_DSN)
    if postgres_answers(configured):
        yield configured
        return
    server = EmbeddedPostgres(work_dir / "postgres")
    try:
        yield server.dsn("postgres")
    finally:
        server.stop()


async def reset_streams(nats_url: str) -> None:
    """Delete every contract stream (and so every durable): the next stack starts from an empty bus."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for spec in subjects.STREAMS:
            try:
                await js.delete_stream(spec.name)
            except nats.js.errors.NotFoundError:
                continue
    finally:
        await nc.close()


@dataclass(frozen=True, slots=True)
class BusTraffic:
    """What a run moved through JetStream: messages stored in the contract streams and
    deliveries to their durables (redeliveries included)."""

    published: int
    delivered: int

    @property
    def moves(self) -> int:
        """Messages moved into or out of the bus, as the raw baseline moves each message twice."""
        return self.published + self.delivered


async def bus_traffic(nats_url: str) -> BusTraffic:
    """The traffic of every contract stream since it was created (`reset_streams`): deliveries made
    and those still due (telemetry's lingering consumer may not have pulled the last bars yet)."""
    nc = await nats.connect(nats_url)
    published = delivered = 0
    try:
        js = nc.jetstream()
        for spec in subjects.STREAMS:
            try:
                info = await js.stream_info(spec.name)
            except nats.js.errors.NotFoundError:
                continue
            published += info.state.last_seq
            for consumer in await js.consumers_info(spec.name):
                made = consumer.delivered.consumer_seq if consumer.delivered else 0
                delivered += made + (consumer.num_pending or 0)
    finally:
        await nc.close()
    return BusTraffic(published, delivered)
