"""``supervise.health.HealthChecker.next_wait``: the start interval while a container
is starting within its start period (Docker 25's rule), the interval otherwise."""

from __future__ import annotations

from typing import Any

from dockyard.supervise.health import HealthChecker


def _checker(**config: Any) -> HealthChecker:
    return HealthChecker({"test": ["CMD", "true"], **config}, ["exec"], lambda state: None)


def test_the_start_interval_holds_while_starting_within_the_start_period() -> None:
    checker = _checker(interval=60, start_period=30, start_interval=2)
    assert checker.next_wait() == 2
    checker.state["Status"] = "healthy"  # reported once: the interval from then on
    assert checker.next_wait() == 60
    checker.state["Status"] = "starting"
    checker._started -= 31  # the start period is over
    assert checker.next_wait() == 60


def test_docker_defaults() -> None:
    assert _checker(interval=60, start_period=30).next_wait() == 5  # defaultStartInterval
    assert _checker(interval=60).next_wait() == 60  # no start period: never
    assert _checker().next_wait() == 30
