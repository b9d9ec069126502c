"""What the containers of a play say about its pods: grouped by pod, alive or not,
ready or not (their readinessProbe), finished (a Job's) — read by the controller
and by ``kube get``."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from dockyard.errors import DockyardError
from dockyard.kube.lower import LABEL_OWNER, LABEL_POD, LABEL_PROBE, LABEL_RESTART, LABEL_ROLE
from dockyard.kube.prober import probes_of

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.engine.records import ContainerRecord

Pods = dict[str, list["ContainerRecord"]]


def pods_of(records: list[ContainerRecord], owner: str | None = None) -> Pods:
    """Pod name → its containers (of ``owner``, if given)."""
    pods: Pods = {}
    for record in records:
        labels = record.spec.labels
        if LABEL_POD in labels and (owner is None or labels.get(LABEL_OWNER) == owner):
            pods.setdefault(labels[LABEL_POD], []).append(record)
    return pods


def infra(members: list[ContainerRecord]) -> ContainerRecord | None:
    found = [r for r in members if r.spec.labels.get(LABEL_ROLE) == "infra"]
    return found[0] if found else None


def apps(members: list[ContainerRecord]) -> list[ContainerRecord]:
    return [r for r in members if r.spec.labels.get(LABEL_ROLE) == "app"]


def alive(members: list[ContainerRecord], wanted: int | None) -> bool:
    """The pod is there: its infra runs, it has its ``wanted`` containers, and it has
    not finished (every container ended and none to be restarted, which only a
    restartPolicy Never or OnFailure allows).  A container that exited or fails its
    liveness probe is restarted in the pod (``kubelet``), not the pod replaced."""
    holder = infra(members)
    if holder is None or holder.state != "running":
        return False
    containers = apps(members)
    if wanted is not None and len(containers) != wanted:
        return False
    return not finished(members)


def restarts(record: ContainerRecord) -> bool:
    """An ended container the pod's restartPolicy restarts (Always; OnFailure after
    a non-zero exit)."""
    policy = record.spec.labels.get(LABEL_RESTART, "Never")
    return record.state == "exited" and (policy == "Always" or (
        policy == "OnFailure" and record.exit_code != 0))


def health(engine: Engine, record: ContainerRecord) -> str:
    if record.spec.healthcheck is None or record.state != "running":
        return ""
    with contextlib.suppress(DockyardError):
        state = engine.containers.inspect(record.id)["State"].get("Health")
        return str((state or {}).get("Status", ""))
    return ""


def live(engine: Engine, record: ContainerRecord,
         verdicts: dict[str, bool] | None = None) -> str:
    """Why the container's livenessProbe (or a startupProbe that gave up) says it must
    be restarted, or "": an exec one (its healthcheck says unhealthy) or one the
    controller runs (its ``verdicts``)."""
    if {"liveness", "startup"} & set(probes_of(record.spec.labels)) and (
            verdicts or {}).get(f"{record.id}/liveness") is False:
        probes = probes_of(record.spec.labels)
        return "failed startup probe" if "startup" in probes and (
            verdicts or {}).get(f"{record.id}/startup") is False else "failed liveness probe"
    if record.spec.labels.get(LABEL_PROBE) == "liveness" and health(
            engine, record) == "unhealthy":
        return "failed liveness probe"
    return ""


def ready(engine: Engine, members: list[ContainerRecord],
          verdicts: dict[str, bool] | None = None) -> bool:
    """Alive, every container running, and every readinessProbe passing (exec: the
    healthcheck says healthy; network: the controller's ``verdicts`` say so)."""
    if not alive(members, None) or any(r.state != "running" for r in apps(members)):
        return False
    if not all((verdicts or {}).get(f"{r.id}/{kind}") for r in members
               for kind in ("readiness", "startup") if kind in probes_of(r.spec.labels)):
        return False
    return all(health(engine, r) == "healthy" for r in members
               if r.spec.labels.get(LABEL_PROBE) == "readiness")


def initialising(members: list[ContainerRecord]) -> bool:
    """The infra runs, its containers are not made yet, and no init container
    failed: the controller is moving the pod through its initContainers."""
    holder = infra(members)
    return (holder is not None and holder.state == "running" and not apps(members)
            and not _init_failed(members))


def _init_failed(members: list[ContainerRecord]) -> bool:
    return any(r.spec.labels.get(LABEL_ROLE) == "init" and r.state == "exited"
               and r.exit_code != 0 for r in members)


def finished(members: list[ContainerRecord]) -> str:
    """A pod that has run to its end: "Succeeded" (every container exited 0),
    "Failed" (one, or an init container, exited otherwise), or "" while it runs —
    also while a container waits to be restarted by its restartPolicy."""
    containers = apps(members)
    if not containers:
        return "Failed" if _init_failed(members) else ""
    if any(r.state in ("running", "restarting", "paused", "created") or restarts(r)
           for r in containers):
        failed = any(r.state == "exited" and r.exit_code and not restarts(r)
                     for r in containers)
        return "Failed" if failed else ""
    return "Succeeded" if all(r.exit_code == 0 for r in containers) else "Failed"


def phase(engine: Engine, members: list[ContainerRecord]) -> str:
    done = finished(members)
    if done:
        return done
    holder = infra(members)
    if holder is None or holder.state != "running":
        return "Failed"
    containers = apps(members)
    return "Running" if containers and all(r.state == "running" or restarts(r)
                                           for r in containers) else "Pending"
