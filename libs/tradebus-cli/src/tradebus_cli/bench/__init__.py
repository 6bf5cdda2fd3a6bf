"""`tradebus bench`: the pipeline measured against raw NATS / PostgreSQL / TA-Lib baselines in one run.

`runner` owns the run (private NATS, a PostgreSQL, a scratch dir); `pipeline` measures the six
services as processes (replay throughput, live latency, resource use); `raw` holds the bare
nats-py baselines; `plugins` finds every service's own `bench(env)`; `report` prints the table
and writes `bench.json` and `docs/BENCHMARKS.md`.
"""
