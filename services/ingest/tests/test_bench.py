"""The ingest benchmark still runs (smoke size); speed is never asserted."""

from __future__ import annotations

from pathlib import Path

from tradebus.bench import BenchEnv
from tradebus_ingest.bench import bench


async def test_replay_bench_smoke(private_nats_url: str, database_url: str, tmp_path: Path) -> None:
    (figure,) = await bench(BenchEnv(nats_url=private_nats_url, admin_dsn=database_url, work_dir=tmp_path, smoke=True))
    assert figure.key == "ingest_replay" and figure.unit == "bars/s"
    assert figure.value > 0 and figure.baseline > 0
    assert figure.notes["bars"] == 2 * 1440 and figure.notes["files"] == 2
