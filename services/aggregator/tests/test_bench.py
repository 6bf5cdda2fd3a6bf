"""The benchmarks still run (tiny sizes); speed is never asserted."""

from __future__ import annotations

from pathlib import Path

from tradebus.bench import BenchEnv
from tradebus_aggregator.bench import bench


async def test_bench_smoke(private_nats_url: str, pg_admin_dsn: str, tmp_path: Path) -> None:
    env = BenchEnv(nats_url=private_nats_url, admin_dsn=pg_admin_dsn, work_dir=tmp_path, smoke=True)
    try:
        figures = await bench(env)
    finally:
        await env.drop_databases()
    assert [f.key for f in figures] == ["aggregator_batch", "backfill", "aggregator_stream_latency"]
    assert all(f.value > 0 and f.baseline > 0 for f in figures)
    batch, backfill, _ = figures
    assert batch.notes["out_1d"] == 4 and batch.notes["out_5m"] == 2 * 576
    assert backfill.notes["rows_stored"] == backfill.notes["rows_written"]
