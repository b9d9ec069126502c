"""The kubelet's part of the controller: a pod's container that exited, failed its
liveness probe (or a startupProbe that gave up) is restarted inside its pod — the
pod's infra keeps its network, IPC and UTS namespaces and its address — per the
pod's restartPolicy (Always; OnFailure after a non-zero exit; Never: it stays
ended), with the kubelet's crash-loop back-off, and counted.  As the kubelet, a
restart makes a new container from the same spec (a fresh root filesystem; the
pod's volumes stay), under the same name.

What the controller learns here (each container's restartCount, its last
termination, a back-off it waits out) is written beside its state, so ``kube get``
reads it.  Kills (preStop, stop signal, grace period) and restarts (with their
postStart handler) run in threads of their own: the round never waits for them.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import DockyardError
from dockyard.kube import play
from dockyard.kube.lower import LABEL_POD
from dockyard.kube.status import Pods, apps, infra, live, restarts
from dockyard.store.atomic import atomic_write

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.engine.records import ContainerRecord
    from dockyard.kube.prober import Prober

INITIAL = 10.0  # seconds: the kubelet's first back-off
LIMIT = 300.0  # … doubling up to five minutes


class Backoff:
    """The kubelet's crash-loop back-off (Kubernetes' ``flowcontrol.Backoff``, as
    ``kuberuntime_manager.doBackOff`` uses it): a container's first exit restarts it
    at once; each later one waits 10 s, 20 s, 40 s … up to 5 min from that exit,
    and an exit more than twice the limit (10 min) after the one before starts the
    count over.  Times are wall-clock seconds."""

    def __init__(self, initial: float = INITIAL, limit: float = LIMIT) -> None:
        self.initial, self.limit = initial, limit
        self.entries: dict[str, tuple[float, float]] = {}  # key → (back-off, last exit)

    def _expired(self, key: str, finished: float) -> bool:
        entry = self.entries.get(key)
        return entry is None or finished - entry[1] > 2 * self.limit

    def waiting(self, key: str, finished: float, now: float) -> float:
        """Seconds left before a container that ended at ``finished`` may restart."""
        if self._expired(key, finished):
            return 0.0
        return max(0.0, self.entries[key][0] - (now - finished))

    def next(self, key: str, finished: float) -> None:
        """The container restarts after its exit at ``finished``."""
        backoff = self.initial if self._expired(key, finished) else min(
            2 * self.entries[key][0], self.limit)
        self.entries[key] = (backoff, finished)

    def current(self, key: str) -> float:
        return self.entries[key][0] if key in self.entries else 0.0


class Kubelet:
    def __init__(self, engine: Engine, prober: Prober, tell: Callable[[str], None]) -> None:
        self.engine = engine
        self.prober = prober
        self.tell = tell
        self.backoff = Backoff()
        # container name → restartCount, lastState and (backing off) waiting
        self.statuses: dict[str, dict[str, Any]] = {}
        # container name → (its pod, its kill or restart under way)
        self.jobs: dict[str, tuple[str, threading.Thread]] = {}
        self.done: dict[str, float] = {}  # pod → when a job of it last ended (monotonic)

    def busy(self, pod: str, since: float) -> bool:
        """A kill or restart of one of the pod's containers is under way, or ended
        after ``since`` (a list of containers taken before may lack the one that
        was being made again)."""
        return any(p == pod and t.is_alive() for p, t in self.jobs.values()) or (
            self.done.get(pod, 0.0) >= since)

    def sync(self, pods: Pods) -> None:
        """One look at the pods (their infra running, their containers made): kill
        the containers whose liveness fails, restart the ended ones that are due."""
        self.jobs = {k: j for k, j in self.jobs.items() if j[1].is_alive()}
        verdicts = self.prober.verdicts()
        for pod, members in sorted(pods.items()):
            holder = infra(members)
            if holder is None or holder.state != "running":
                continue
            for record in apps(members):
                if record.name in self.jobs:
                    continue
                if record.state == "running":
                    self.statuses.get(record.name, {}).pop("waiting", None)
                    why = live(self.engine, record, verdicts)
                    if why:
                        self.tell(f"pod {pod}: container {_name(record)} {why}, will be "
                                  "restarted")
                        self._job(pod, record, self._kill, record, holder)
                elif restarts(record):
                    self._restart_when_due(pod, record, holder)

    def _restart_when_due(self, pod: str, record: ContainerRecord,
                          holder: ContainerRecord) -> None:
        now = time.time()
        finished = _wall(record.finished_at) or now
        status = self.statuses.setdefault(record.name, {"restartCount": 0, "pod": pod})
        if self.backoff.waiting(record.name, finished, now) > 0:
            status["waiting"] = {"reason": "CrashLoopBackOff", "message": (
                f"back-off {self.backoff.current(record.name):g}s restarting failed "
                f"container={_name(record)} pod={pod}")}
            return
        self.backoff.next(record.name, finished)
        status.pop("waiting", None)
        status["restartCount"] += 1
        status["lastState"] = {"terminated": terminated(record)}
        self.prober.reset(record.id)
        self.tell(f"pod {pod}: container {_name(record)} exited with code "
                  f"{record.exit_code}: restarting it (restart {status['restartCount']})")
        self._job(pod, record, self._restart, record, holder)

    def _job(self, pod: str, record: ContainerRecord, work: Callable[..., None],
             *args: Any) -> None:
        def run() -> None:
            try:
                work(*args)
            except DockyardError as exc:
                self.tell(f"pod {pod}: container {_name(record)}: {exc}")
            finally:
                self.done[pod] = time.monotonic()

        thread = threading.Thread(target=run, name=f"kubelet {record.name}", daemon=True)
        self.jobs[record.name] = (pod, thread)
        thread.start()

    def _kill(self, record: ContainerRecord, holder: ContainerRecord) -> None:
        play.end_containers(self.engine, [record], holder, kill=True)

    def _restart(self, record: ContainerRecord, holder: ContainerRecord) -> None:
        """A new container from the ended one's spec, in its place (its anonymous
        volumes, already resolved in that spec, are kept for it), and its postStart."""
        self.engine.containers.remove(record.id, force=True)
        fresh = self.engine.containers.create(record.spec)
        self.engine.containers.start(fresh.id)
        play.post_start(self.engine, self.engine.containers.get(fresh.id), holder, self.tell)

    def forget(self, pods: set[str]) -> None:
        """What is known of the containers of pods that are gone."""
        gone = {name for name, status in self.statuses.items() if status["pod"] not in pods}
        self.statuses = {k: v for k, v in self.statuses.items() if k not in gone}
        self.backoff.entries = {k: v for k, v in self.backoff.entries.items()
                                if k not in gone}
        self.done = {k: v for k, v in self.done.items() if k in pods}

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(self.statuses).encode(), durable=False)

    def close(self, wait: float = 3.0) -> None:
        """Wait (a while) for the kills and restarts under way."""
        deadline = time.monotonic() + wait
        for _, thread in list(self.jobs.values()):
            thread.join(max(0.0, deadline - time.monotonic()))


def terminated(record: ContainerRecord) -> dict[str, Any]:
    """A containerStatus's ``terminated`` state of an ended container."""
    reason = "OOMKilled" if record.oom_killed else (
        "Completed" if record.exit_code == 0 else "Error")
    return {"exitCode": record.exit_code, "reason": reason, "startedAt": record.started_at,
            "finishedAt": record.finished_at}


def read_statuses(folder: Path) -> dict[str, dict[str, Any]]:
    """Every controller's latest container statuses (``kube get``)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.restarts")) if folder.exists() else []:
        with contextlib.suppress(OSError, ValueError):
            found.update(json.loads(path.read_text()))
    return found


def _name(record: ContainerRecord) -> str:
    """The container's name in its pod."""
    return record.name[len(record.spec.labels.get(LABEL_POD, "")) + 1:]


def _wall(stamp: str) -> float:
    """An ISO time as wall-clock seconds (0 if there is none)."""
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return 0.0
