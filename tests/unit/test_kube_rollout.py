"""One reconcile round's plan for a replicated object (pure): scaling, RollingUpdate
bounded by maxSurge/maxUnavailable and gated on readiness, Recreate, OnDelete."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.kube.rollout import PodState, Step, bounds, plan_step, strategy_of, template_hash

ROLLING = strategy_of("Deployment", {"strategy": {"rollingUpdate": {"maxSurge": 1,
                                                                    "maxUnavailable": 1}}})


def _pods(template: str, ready: int, unready: int = 0) -> list[PodState]:
    return ([PodState(f"{template}-r{i}", template, True) for i in range(ready)]
            + [PodState(f"{template}-u{i}", template, False) for i in range(unready)])


def test_scaling_starts_the_missing_and_retires_the_unready_extra_first() -> None:
    assert plan_step(_pods("a", 3), "a", 5, ROLLING) == Step(2, ())
    assert plan_step(_pods("a", 4, 1), "a", 4, ROLLING) == Step(0, ("a-u0",))


def test_rolling_update_is_bounded_and_readiness_gated() -> None:
    # 5 old ready: one new may surge, one old may go (5 - 1 ready stay)
    assert plan_step(_pods("old", 5), "new", 5, ROLLING) == Step(1, ("old-r0",))
    # the new pod not ready yet: 4 old ready is the minimum, nothing more goes
    step = plan_step(_pods("old", 4) + _pods("new", 0, 1), "new", 5, ROLLING)
    assert step == Step(1, ())
    # ready: one more old may go
    step = plan_step(_pods("old", 4) + _pods("new", 1), "new", 5, ROLLING)
    assert step == Step(1, ("old-r0",))
    # an old pod that is not ready serves nothing: it goes at once
    step = plan_step(_pods("old", 3, 1) + _pods("new", 1), "new", 5, ROLLING)
    assert step.retire[0] == "old-u0"


def test_the_defaults_are_a_quarter_up_and_down() -> None:
    default = strategy_of("Deployment", {})
    assert default["type"] == "RollingUpdate"
    assert bounds(default, 10) == (3, 2)  # surge rounds up, unavailable down
    assert bounds(strategy_of("DaemonSet", {}), 1) == (0, 1)
    with pytest.raises(InvalidArgument, match="both be 0"):
        bounds(strategy_of("Deployment", {"strategy": {"rollingUpdate": {
            "maxSurge": 0, "maxUnavailable": "10%"}}}), 5)
    with pytest.raises(InvalidArgument, match="neither a count nor a percentage"):
        bounds(strategy_of("Deployment", {"strategy": {"rollingUpdate": {
            "maxSurge": "lots"}}}), 5)


def test_recreate_retires_every_old_pod_before_starting_any() -> None:
    recreate = strategy_of("Deployment", {"strategy": {"type": "Recreate"}})
    assert plan_step(_pods("old", 3), "new", 3, recreate) == Step(
        0, ("old-r0", "old-r1", "old-r2"))
    assert plan_step([], "new", 3, recreate) == Step(3, ())


def test_on_delete_replaces_an_old_pod_only_once_it_is_gone() -> None:
    on_delete = strategy_of("DaemonSet", {"updateStrategy": {"type": "OnDelete"}})
    assert plan_step(_pods("old", 1), "new", 1, on_delete) == Step(0, ())
    assert plan_step([], "new", 1, on_delete) == Step(1, ())


def test_the_template_hash_follows_the_template_only() -> None:
    one = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"image": "x:1"}]}}
    two = {"spec": {"containers": [{"image": "x:1"}]}, "metadata": {"labels": {"app": "a"}}}
    assert template_hash(one) == template_hash(two)
    assert template_hash(one) != template_hash({**one, "spec": {"containers": [
        {"image": "x:2"}]}})
