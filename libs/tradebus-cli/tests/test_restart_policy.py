"""The supervisor's restart policy: 1 s doubling to 30 s, forgotten after 60 s of uptime."""

from __future__ import annotations

from tradebus_cli.restart import RestartPolicy


def test_a_first_crash_waits_one_second() -> None:
    assert RestartPolicy().next_delay(None, uptime_s=0.1) == 1.0


def test_quick_crashes_double_the_delay_up_to_thirty_seconds() -> None:
    policy = RestartPolicy()
    delays = []
    delay = None
    for _ in range(8):
        delay = policy.next_delay(delay, uptime_s=2.0)
        delays.append(delay)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_minute_of_uptime_resets_the_backoff() -> None:
    policy = RestartPolicy()
    assert policy.next_delay(30.0, uptime_s=59.9) == 30.0
    assert policy.next_delay(30.0, uptime_s=60.0) == 1.0
    assert policy.next_delay(16.0, uptime_s=3600.0) == 1.0


def test_the_policy_is_configurable() -> None:
    policy = RestartPolicy(initial_s=0.5, max_s=3.0, reset_after_s=10.0)
    assert [policy.next_delay(d, 1.0) for d in (None, 0.5, 1.0, 2.0)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.next_delay(3.0, 10.0) == 0.5
