"""The bench's CPU accounting of the processes that serve a stack (`Infra`)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from tradebus_cli.bench.stack import Infra

_BURN_THEN_SLEEP = "\n".join(
    ("import time", "end = time.process_time() + 0.4", "while time.process_time() < end: pass", "time.sleep(30)")
)


def test_a_second_mark_counts_only_what_follows_it() -> None:
    """The replay marks the bus once before its raw baseline and again before the pipeline: the
    pipeline's figure must not include the baseline's CPU seconds."""
    tag = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, "-c", _BURN_THEN_SLEEP, tag])
    try:
        group = Infra(lambda cmd: tag in cmd)
        group.mark()
        time.sleep(1.0)  # the burn (0.4 CPU s) happens after the first mark
        group.sample()
        assert group.cpu_s >= 0.3
        group.mark()
        time.sleep(0.2)
        group.sample()
        assert group.cpu_s < 0.1
    finally:
        proc.kill()
        proc.wait()


def test_excluded_processes_are_not_counted() -> None:
    tag = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, "-c", _BURN_THEN_SLEEP, tag])
    try:
        group = Infra(lambda cmd: tag in cmd, exclude={proc.pid})
        group.mark()
        time.sleep(1.0)
        group.sample()
        assert group.cpu_s == 0.0
        assert not group.last
    finally:
        proc.kill()
        proc.wait()
