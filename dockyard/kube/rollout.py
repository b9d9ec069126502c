"""What one reconcile round does to a replicated object's pods (pure): how many new
pods to start and which to retire, for scaling and for rolling out a changed
template per the object's strategy.

Pods carry the ``pod-template-hash`` of the template they were made from, as in
Kubernetes.  ``RollingUpdate`` keeps at most ``replicas + maxSurge`` pods and at
least ``replicas - maxUnavailable`` ready ones (readiness-gated: an old pod goes
only when enough pods are ready without it); ``Recreate`` retires every old pod
before any new one starts; a DaemonSet's ``OnDelete`` replaces an old pod only
once it is gone.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, NamedTuple

from dockyard.errors import InvalidArgument

HASH_LABEL = "pod-template-hash"


class PodState(NamedTuple):
    name: str
    template: str  # its pod-template-hash
    ready: bool


class Step(NamedTuple):
    start: int  # new pods (of the current template) to start
    retire: tuple[str, ...]  # pods to take out of their Services and remove


def template_hash(template: dict[str, Any]) -> str:
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def strategy_of(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A Deployment's ``strategy``, or a DaemonSet's ``updateStrategy`` (defaults
    maxSurge 0, maxUnavailable 1), with Kubernetes' defaults filled in."""
    if kind == "DaemonSet":
        strategy = dict(spec.get("updateStrategy") or {})
        rolling = {"maxSurge": 0, "maxUnavailable": 1,
                   **(strategy.get("rollingUpdate") or {})}
        return {"type": strategy.get("type", "RollingUpdate"), "rollingUpdate": rolling}
    strategy = dict(spec.get("strategy") or {})
    rolling = {"maxSurge": "25%", "maxUnavailable": "25%",
               **(strategy.get("rollingUpdate") or {})}
    return {"type": strategy.get("type", "RollingUpdate"), "rollingUpdate": rolling}


def amount(value: int | str, replicas: int, *, round_up: bool, field: str) -> int:
    """maxSurge/maxUnavailable: a count, or a percentage of replicas (surge rounds
    up, unavailable down, as Kubernetes does)."""
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%") or not text[:-1].isdigit():
        raise InvalidArgument(f"{field}: {text!r} is neither a count nor a percentage")
    share = replicas * int(text[:-1]) / 100
    return math.ceil(share) if round_up else math.floor(share)


def bounds(strategy: dict[str, Any], replicas: int) -> tuple[int, int]:
    rolling = strategy["rollingUpdate"]
    surge = amount(rolling["maxSurge"], replicas, round_up=True,
                   field="strategy.rollingUpdate.maxSurge")
    unavailable = amount(rolling["maxUnavailable"], replicas, round_up=False,
                         field="strategy.rollingUpdate.maxUnavailable")
    if surge == 0 and unavailable == 0:
        raise InvalidArgument("strategy.rollingUpdate: maxSurge and maxUnavailable may not "
                              "both be 0")
    return surge, unavailable


def plan_step(pods: list[PodState], current: str, replicas: int,
              strategy: dict[str, Any]) -> Step:
    new = [p for p in pods if p.template == current]
    old = [p for p in pods if p.template != current]
    if not old:  # plain scaling: unready pods are the first to go
        extra = sorted(new, key=lambda p: p.ready)[:max(0, len(new) - replicas)]
        return Step(max(0, replicas - len(new)), tuple(p.name for p in extra))
    if strategy["type"] == "Recreate":
        return Step(0, tuple(p.name for p in old))  # the new ones once all are gone
    if strategy["type"] == "OnDelete":
        return Step(max(0, replicas - len(pods)), ())
    surge, unavailable = bounds(strategy, replicas)
    start = max(0, min(replicas + surge - len(pods), replicas - len(new)))
    retire = [p.name for p in old if not p.ready]  # serving nothing: no loss
    spare = sum(p.ready for p in pods) - (replicas - unavailable)
    for pod in (p for p in old if p.ready):
        if spare <= 0:
            break
        retire.append(pod.name)
        spare -= 1
    return Step(start, tuple(retire))
