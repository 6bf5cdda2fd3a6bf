"""`tradebus backup` of a stack that traded, `tradebus restore` into a fresh one: same answers, and it goes on.

Two local stacks as processes (`tradebus up`, each with its own embedded nats-server and
PostgreSQL under its run directory, private ports). Stack A replays two days of real XRPETH
klines until every durable is caught up, is backed up and brought down. Stack B starts empty (its
ingest replays an empty file), is restored from the archive, and must answer every API as A did,
its durables where A's were; then one more hour of bars flows through it, and no event of the
restored streams is published a second time. The refusals (a corrupt or truncated archive, a
non-empty target) run against stack B as the operator would meet them.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from stack_cli import cli, missing_services

from tradebus.embedded import free_port
from tradebus.natsauth import ADMIN, Credentials, Login, inbox_prefix, with_login
from tradebus.settings import SERVICES
from tradebus.testing import wait_for
from tradebus_cli.rundir import RunDir

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"
REPLAY = (DATA / "XRPETH-1m-2019-10-11.csv", DATA / "XRPETH-1m-2019-10-12.csv")
SYMBOL = "XRPETH"
EVENT_STREAMS = ("BARS", "SIGNALS", "EXEC", "ROLLUPS")
_URLS = ("NATS_URL", "DATABASE_URL")


class Stack:
    def __init__(self, root: Path, name: str, replay: list[Path]) -> None:
        self.run = RunDir(root / name)
        ports = {s: free_port() for s in SERVICES}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("NATS_")},
            "TRADEBUS_RUN_DIR": str(self.run.path),
            "TRADEBUS_LOCAL": "1",
            "TRADEBUS_MONITORING": "0",
            "TRADEBUS_SUPERVISOR_PORT": str(free_port()),
            "NATS_URL": f"nats://127.0.0.1:{free_port()}",  # nothing answers: the stack embeds its own
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/tradebus",
            "SYMBOLS": SYMBOL,
            "RISK_BALANCES": "ETH=10,BTC=1",  # XRPETH trades in ETH, ADABTC in BTC: one account each
            "INGEST_SOURCE": "replay",
            "INGEST_REPLAY_FILES": ",".join(str(p) for p in replay),
            "INGEST_REPLAY_SPEED": "max",
            "INGEST_LIVE": "false",
            "BACKFILL_DAYS": "0",
            "HEARTBEAT_INTERVAL_S": "1",
            "COLUMNS": "200",
            **{f"TRADEBUS_{s.upper()}_PORT": str(p) for s, p in ports.items()},
        }
        self.urls = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}

    async def admin(self) -> Client:
        state = self.run.read_state()
        assert state is not None
        nats_dep = state.deps["nats"]
        password = Credentials(Path(nats_dep.credentials_dir)).password(ADMIN)
        return await nats.connect(with_login(nats_dep.url, Login(ADMIN, password)), inbox_prefix=inbox_prefix(ADMIN))

    async def tradebus(self, *args: str, timeout: float = 120.0) -> tuple[int, str]:
        """`tradebus ARGS`; every command but `up` finds the embedded NATS and PostgreSQL in the
        run directory, as an operator's would (NATS_URL and DATABASE_URL only told `up` where)."""
        env = self.env if args[0] == "up" else {k: v for k, v in self.env.items() if k not in _URLS}
        return await cli(*args, env=env, timeout=timeout)


async def _durables(nc: Client) -> dict[str, tuple[int, int, int]]:
    """Each durable of the event streams: (ack floor, undelivered, unacknowledged)."""
    js = nc.jetstream()
    found = {}
    for stream in EVENT_STREAMS:
        for c in await js.consumers_info(stream):
            found[f"{stream}/{c.name}"] = (c.ack_floor.stream_seq or 0, c.num_pending or 0, c.num_ack_pending or 0)
    return found


async def _settled(nc: Client) -> bool:
    durables = await _durables(nc)
    return bool(durables) and all(pending == unacked == 0 for _, pending, unacked in durables.values())


async def _msg_ids(nc: Client) -> dict[str, list[str]]:
    """Every `Nats-Msg-Id` stored in the event streams, per stream, in sequence order."""
    js = nc.jetstream()
    found: dict[str, list[str]] = {}
    for stream in EVENT_STREAMS:
        last = (await js.stream_info(stream)).state.last_seq
        found[stream] = []
        for seq in range(1, last + 1):
            msg = await js.get_msg(stream, seq)
            found[stream].append((msg.headers or {}).get("Nats-Msg-Id", f"#{seq}"))
    return found


def _readiness(body: dict[str, Any]) -> dict[str, Any]:
    """Telemetry's readiness without its wall-clock parts (when checked, ages in the details)."""
    points = sorted((p["name"], p["ok"], p["severity"]) for p in body["failure_points"])
    return {"status": body["status"], "points": points}


async def _answers(urls: dict[str, str]) -> dict[str, Any]:
    """What every service's API says about the state (wall-clock fields aside)."""
    async with httpx.AsyncClient(timeout=10) as http:

        async def get(service: str, path: str, **params: Any) -> Any:
            response = await http.get(f"{urls[service]}{path}", params=params)
            assert response.status_code == 200, f"{service} {path}: {response.status_code} {response.text}"
            return response.json()

        answers = {
            f"bars {interval}": await get("aggregator", "/v1/bars", symbol=SYMBOL, interval=interval, limit=5000)
            for interval in ("1m", "5m", "1h", "4h")
        }
        answers["signals latest"] = await get("signal", "/v1/signals/latest", symbol=SYMBOL)
        answers["account"] = await get("risk", "/v1/account")
        answers["positions"] = await get("risk", "/v1/positions")
        answers["trades"] = await get("risk", "/v1/trades", limit=1000)
        answers["performance daily"] = await get("rollup", "/v1/performance/daily")
        answers["performance strategies"] = await get("rollup", "/v1/performance/strategies")
        answers["readiness"] = _readiness(await get("telemetry", "/v1/readiness"))
        return answers


def _next_hour(last_open_ms: int) -> str:
    """Binance kline rows for the hour after `last_open_ms` (flat price: closes 5m and 1h bars)."""
    rows = []
    for minute in range(1, 61):
        t = last_open_ms + minute * 60_000
        rows.append(f"{t},0.00151451,0.00151500,0.00151400,0.00151451,10.0,{t + 59_999},,,,,")
    return "\n".join(rows) + "\n"


@pytest.fixture
def run_root() -> Iterator[Path]:
    """The stacks' run directories. Not pytest's tmp_path: that is 0700 under root, and the
    embedded PostgreSQL runs as its own user."""
    path = Path(tempfile.mkdtemp(prefix="tradebus-backup-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_backup_of_a_traded_stack_restores_into_a_fresh_one(run_root: Path, tmp_path: Path) -> None:
    if missing := missing_services():
        pytest.skip(f"service packages not importable yet: {', '.join(missing)}")
    started = time.monotonic()
    empty = tmp_path / "empty" / f"{SYMBOL}-1m-2019-10-11.csv"
    empty.parent.mkdir()
    empty.write_text("")
    a, b = Stack(run_root, "a", list(REPLAY)), Stack(run_root, "b", [empty])
    archive_path = tmp_path / "backup.tar"
    timings: dict[str, float] = {}
    try:
        code, output = await a.tradebus("up")
        assert code == 0, output
        nc = await a.admin()
        try:
            await wait_for(lambda: _settled(nc), timeout=90, what="stack A's durables caught up with the replay")
            before = await _answers(a.urls)
            assert before["trades"] and before["performance daily"], "the replay made no trade: nothing to restore"
            durables = await _durables(nc)
            ids = await _msg_ids(nc)
        finally:
            await nc.close()
        clock = time.monotonic()
        code, output = await a.tradebus("backup", "--output", str(archive_path))
        timings["backup"] = time.monotonic() - clock
        assert code == 0, output
        assert "backup written to" in output
    finally:
        code, output = await a.tradebus("down", timeout=90)
        assert code == 0, output

    try:
        code, output = await b.tradebus("up")
        assert code == 0, output
        await _refusals(b, archive_path, tmp_path)

        clock = time.monotonic()
        code, output = await b.tradebus("restore", str(archive_path))
        timings["restore"] = time.monotonic() - clock
        assert code == 0, output
        assert "services ready" in output, output

        nc = await b.admin()
        try:
            assert await _durables(nc) == durables
            assert await _msg_ids(nc) == ids

            async def same_readiness() -> bool:
                """Telemetry hears every restarted service again within a few heartbeats."""
                async with httpx.AsyncClient(timeout=10) as http:
                    body = (await http.get(f"{b.urls['telemetry']}/v1/readiness")).json()
                return bool(_readiness(body) == before["readiness"])

            await wait_for(same_readiness, timeout=30, what="stack B's readiness as A's")
            after = await _answers(b.urls)
            assert after == before

            code, output = await b.tradebus("restore", str(archive_path))
            assert code == 1 and "not empty" in output and "--force" in output, output
            assert len(output.strip().splitlines()) == 1, output

            # one more hour through the restored stack: the durables resume where A's were
            hour = tmp_path / "next" / f"{SYMBOL}-1m-2019-10-13.csv"
            hour.parent.mkdir()
            hour.write_text(_next_hour(int(REPLAY[-1].read_text().splitlines()[-1].split(",")[0])))
            code, output = await b.tradebus("replay", str(hour))
            assert code == 0, output

            async def new_hour_through() -> bool:
                bars = await _answers_bars(b.urls["aggregator"], "1h")
                return bool(bars) and bars[-1]["open_time"].startswith("2019-10-13T00:00") and await _settled(nc)

            await wait_for(new_hour_through, timeout=60, what="the new hour aggregated and every durable caught up")
            latest = (await _answers(b.urls))["signals latest"]
            assert latest != before["signals latest"], "no signal on the new bars"
            now = await _msg_ids(nc)
            for stream, old in ids.items():
                assert now[stream][: len(old)] == old
                assert len(set(now[stream])) == len(now[stream]), f"{stream}: an event was published twice"
            assert len(now["BARS"]) > len(ids["BARS"]) + 60
        finally:
            await nc.close()
    finally:
        code, output = await b.tradebus("down", timeout=90)
    assert code == 0, output
    size = archive_path.stat().st_size
    print(f"archive {size / 1e6:.2f} MB; backup {timings['backup']:.1f} s, restore {timings['restore']:.1f} s; "
          f"test {time.monotonic() - started:.0f} s")  # fmt: skip


async def _answers_bars(url: str, interval: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{url}/v1/bars", params={"symbol": SYMBOL, "interval": interval, "limit": 5})
        return list(response.json()) if response.status_code == 200 else []


async def _refusals(b: Stack, archive_path: Path, tmp_path: Path) -> None:
    """Truncated, altered (a member, the manifest), newer (schema, nats-server) and missing archives
    are each refused in one line, B untouched."""
    cases = _bad_archives(archive_path, tmp_path)
    results = await asyncio.gather(*(b.tradebus("restore", str(path)) for path in cases))
    for (path, reason), (code, output) in zip(cases.items(), results, strict=True):
        assert code == 1 and reason in output, f"{path.name}: {output}"
        assert len(output.strip().splitlines()) == 1 and "Traceback" not in output, output
    nc = await b.admin()
    try:
        assert (await nc.jetstream().stream_info("BARS")).state.messages == 0
    finally:
        await nc.close()


def _bad_archives(archive_path: Path, tmp_path: Path) -> dict[Path, str]:
    """Spoilt copies of the archive, each with what its refusal must say."""
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive_path.read_bytes()[: archive_path.stat().st_size // 2])
    altered = tmp_path / "altered.tar"
    raw = bytearray(archive_path.read_bytes())
    with tarfile.open(archive_path) as tar:
        member = tar.getmember("postgres.dump")
    raw[member.offset_data + member.size // 2] ^= 0xFF
    altered.write_bytes(bytes(raw))
    newer_schema = _with_manifest(archive_path, tmp_path / "newer-schema.tar", schemas={"risk": 999})
    newer_nats = _with_manifest(archive_path, tmp_path / "newer-nats.tar", nats_server="9.0.0")
    altered_manifest = _with_manifest(archive_path, tmp_path / "bad-manifest.tar", rehash=False, schemas={"risk": 1})
    missing = tmp_path / "missing.tar"
    return {
        truncated: "truncated", altered: "postgres.dump does not match its checksum", newer_schema: "migration 999",
        newer_nats: "nats-server 9.0.0", altered_manifest: "manifest.json does not match its checksum",
        missing: "cannot read",
    }  # fmt: skip


def _with_manifest(source: Path, target: Path, *, rehash: bool = True, **changes: Any) -> Path:
    """A copy of the archive whose manifest (and its checksum, when `rehash`) says `changes`: as if
    a newer tradebus or nats-server had written it (or the manifest was altered)."""
    with tarfile.open(source) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    manifest = json.loads(members[0][1])
    for key, value in changes.items():
        manifest[key] = {**manifest[key], **value} if isinstance(value, dict) else value
    body = json.dumps(manifest).encode()
    with tarfile.open(target, "w") as out:
        for member, data in members:
            written = {"manifest.json": body, "manifest.sha256": hashlib.sha256(body).hexdigest().encode()}
            content = written.get(member.name, data) if rehash or member.name != "manifest.sha256" else data
            member.size = len(content)
            out.addfile(member, io.BytesIO(content))
    return target
