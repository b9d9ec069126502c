"""``supervise.health.HealthChecker.next_wait``: the start interval while a container
is starting within its start period (Docker 25's rule), the interval otherwise; and
which check a container runs (its own merged with its image's)."""

from __future__ import annotations

from typing import Any

from dockyard.engine.spec import Healthcheck, active_healthcheck, merged_healthcheck
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


def test_a_containers_check_is_merged_with_its_images_field_by_field() -> None:
    """dockerd's merge at create: each unset field of the container's own check (an
    empty test, a 0) is the image's."""
    image = {"Test": ["CMD", "probe"], "Interval": 60 * 10**9, "Timeout": 5 * 10**9,
             "Retries": 2, "StartPeriod": 10**9}
    assert merged_healthcheck(None, image) == Healthcheck(("CMD", "probe"), 60.0, 5.0, 2, 1.0)
    assert merged_healthcheck(Healthcheck(interval=0.2), image) == Healthcheck(
        ("CMD", "probe"), 0.2, 5.0, 2, 1.0)
    own = Healthcheck(("CMD-SHELL", "true"), retries=7, start_interval=0.5)
    assert merged_healthcheck(own, image) == Healthcheck(("CMD-SHELL", "true"), 60.0, 5.0, 7,
                                                         1.0, 0.5)
    assert merged_healthcheck(own, None) == own and merged_healthcheck(None, {}) is None
    assert active_healthcheck(merged_healthcheck(Healthcheck(interval=1.0), None)) is None
    assert active_healthcheck(Healthcheck(("NONE",))) is None
    assert active_healthcheck(own) == own
