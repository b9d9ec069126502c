"""The reconcile loop of one play: keeps each Deployment, ReplicaSet and DaemonSet
at its replicas (a pod whose infra died or whose container is gone is removed and
replaced), restarts a pod's container that exited or fails its liveness probe in
its pod as the kubelet does (``kubelet``), rolls a changed template out per its
strategy, runs Jobs to their completions, moves pods through their
initContainers, runs the probes that are not a container's healthcheck (each on
its own clock: ``prober.Prober``), and serves each Service's ClusterIP over the
ready pods its selector matches.

Run by ``kube play`` in the foreground, or detached as its own process
(``python -m dockyard.kube.controller ROOT STATE``); its state file under
``<root>/kube/controllers/`` names its pid and the objects it owns, so ``kube
down`` stops exactly the controllers of the objects it removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import DockyardError, InternalError
from dockyard.kube import play, rollout
from dockyard.kube.kubelet import Kubelet
from dockyard.kube.load import REPLICATED, KubeObject, matches
from dockyard.kube.lower import LABEL_ROLE, Context, PodPlan
from dockyard.kube.prober import Prober, Target, probes_of
from dockyard.kube.proxy import ServiceProxy
from dockyard.kube.status import (
    Pods,
    alive,
    apps,
    finished,
    infra,
    initialising,
    pods_of,
    ready,
)
from dockyard.store.atomic import atomic_write

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.engine.records import ContainerRecord

MARKER = "dockyard.kube.controller"
PERIOD = 0.5
DRAIN = 10.0  # seconds at most a retired pod keeps serving the connections it has


def state_dir(engine: Engine) -> Path:
    return play.kube_dir(engine) / "controllers"


def write_state(engine: Engine, objects: list[KubeObject]) -> Path:
    folder = state_dir(engine)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.urandom(6).hex()}.json"
    _write(path, {"pid": 0, "objects": [o._asdict() for o in objects]})
    return path


def _write(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(state).encode(), durable=False)


def playing(engine: Engine, owners: set[str]) -> tuple[Path, list[KubeObject]] | None:
    """The state file and objects of the live controller playing exactly ``owners``."""
    folder = state_dir(engine)
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        objects = [KubeObject(**o) for o in state["objects"]]
        pid = int(state.get("pid") or 0)
        if {o.owner for o in objects} == owners and pid and _is_controller(pid, path):
            return path, objects
    return None


def hand_over(path: Path, objects: list[KubeObject]) -> None:
    """Give the controller of ``path`` a new desired state (it re-reads on SIGHUP)."""
    state = json.loads(path.read_text())
    state["objects"] = [o._asdict() for o in objects]
    _write(path, state)
    os.kill(int(state["pid"]), signal.SIGHUP)


def read_objects(path: Path) -> list[KubeObject]:
    return [KubeObject(**o) for o in json.loads(path.read_text())["objects"]]


def spawn(engine: Engine, objects: list[KubeObject]) -> int:
    """Start a detached controller for ``objects``; its pid."""
    path = write_state(engine, objects)
    with open(path.with_suffix(".log"), "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", MARKER, str(engine.layout.root),
                                  str(path)], stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=log, start_new_session=True)
    _set_pid(path, child.pid)
    ready = path.with_suffix(".ready")
    deadline = time.monotonic() + 30
    while not ready.exists():  # its Services listen before play returns
        if child.poll() is not None or time.monotonic() > deadline:
            if child.poll() is None:
                child.kill()
            child.wait()
            text = path.with_suffix(".log").read_text(errors="replace").strip()
            raise InternalError("kube: the controller did not come up: "
                                + (text.splitlines()[-1] if text else "no output"))
        time.sleep(0.02)
    return child.pid


def _set_pid(path: Path, pid: int) -> None:
    state = json.loads(path.read_text())
    state["pid"] = pid
    _write(path, state)


def stop_for(engine: Engine, owners: set[str]) -> list[str]:
    """Stop (SIGTERM, then SIGKILL) every controller owning one of ``owners``."""
    stopped = []
    folder = state_dir(engine)
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not owners & {KubeObject(**o).owner for o in state["objects"]}:
            continue
        pid = int(state.get("pid") or 0)
        if pid and _is_controller(pid, path):
            _terminate(pid)
            stopped.append(f"controller {pid}")
        for suffix in (".json", ".log", ".ready", ".probes", ".restarts"):
            path.with_suffix(suffix).unlink(missing_ok=True)
    return stopped


def _is_controller(pid: int, path: Path) -> bool:
    """The pid is still the controller of that state file (a detached one), or a
    `dockyard kube play` in the foreground."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (MARKER.encode() in argv and str(path).encode() in argv) or (
        b"kube" in argv and b"play" in argv)


def run_foreground(engine: Engine, objects: list[KubeObject]) -> None:
    """The loop in this process until SIGINT/SIGTERM; then the play is taken down."""
    path = write_state(engine, objects)
    _set_pid(path, os.getpid())
    try:
        Controller(engine, objects, path).run()
    finally:
        path.unlink(missing_ok=True)
        play.down(engine, objects)


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


class Controller:
    def __init__(self, engine: Engine, objects: list[KubeObject],
                 state: Path | None = None) -> None:
        self.engine = engine
        self.objects = objects
        self.state = state  # re-read on SIGHUP: a re-applied play's new desired state
        self.contexts = self._contexts()
        self.proxies: dict[str, list[ServiceProxy]] = {}  # Service ref → its ports' proxies
        self.ready: dict[str, list[str]] = {}  # Service ref → ready pod addresses
        self.known: dict[str, set[tuple[str, str]]] = {}  # … → (pod infra id, address)
        self.draining: set[str] = set()  # pods out of their Services, about to go
        self.failed: dict[str, str] = {}  # pod → why it failed (told once)
        self.prober = Prober()
        self.kubelet = Kubelet(engine, self.prober, _tell)
        self.exec_argv: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        self.stopping = False
        self.reload = False

    def run(self, ready: Path | None = None) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._reload)
        self._open_services()
        self.reconcile()  # endpoints known before anyone is told the play is up
        if ready is not None:
            ready.touch()
        while not self.stopping:
            try:
                if self.reload:
                    self._read_state()
                self.reconcile()
            except Exception:  # a bad round is logged; the next one tries again
                traceback.print_exc()
            time.sleep(PERIOD)
        self.prober.close()
        self.kubelet.close()
        for proxy in (p for proxies in self.proxies.values() for p in proxies):
            proxy.close()

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _reload(self, signum: int, frame: Any) -> None:
        self.reload = True

    def _read_state(self) -> None:
        self.reload = False
        if self.state is not None:
            self.objects = read_objects(self.state)
            self.contexts = self._contexts()
            for ctx in self.contexts.values():
                play.write_configs(ctx)
            print("desired state re-read", flush=True)

    def _contexts(self) -> dict[str, Context]:
        """Each namespace's lowering context."""
        return {ns: play.context(self.engine, group)
                for ns, group in play.by_namespace(self.objects).items() if ns}

    def reconcile(self) -> None:
        began = time.monotonic()
        records = self.engine.containers.list(all_containers=True)
        self._probe(records)
        for obj in self.objects:
            if obj.kind in (*REPLICATED, "Job", "Pod"):
                found = pods_of(records, obj.owner)
                # a pod whose container is being made again is not judged on this list
                busy = {p for p in found if self.kubelet.busy(p, began)}
                failed = self._initialise(obj, {p: m for p, m in found.items()
                                                if p not in busy})
                pods = {p: m for p, m in found.items() if p not in failed}
                self.kubelet.sync({p: m for p, m in pods.items()
                                   if p not in busy and not initialising(m)})
                if obj.kind in REPLICATED:
                    self._scale(obj, pods, busy)
                elif obj.kind == "Job":
                    self._run_job(obj, pods)
        self._refresh_services()

    def _initialise(self, obj: KubeObject, pods: Pods) -> set[str]:
        """Move each pod in its init phase on (``play.advance_pod``); a pod whose init
        container failed is removed to be replaced (a bare Pod's stays, failed)."""
        failed = set()
        template = obj.body["spec"] if obj.kind == "Pod" else obj.body["spec"]["template"]
        current = rollout.template_hash(template)
        for pod, members in sorted(pods.items()):
            holder = infra(members)
            if holder is None or holder.state != "running" or apps(members) or not any(
                    r.spec.labels.get(LABEL_ROLE) == "init" for r in members):
                continue
            if obj.kind != "Pod" and holder.spec.labels.get(rollout.HASH_LABEL) != current:
                why = "its template changed while it initialised"
            else:
                name = pod.removeprefix(f"{obj.namespace}.")
                plan = play.plan_of(obj, self.contexts[obj.namespace], name)
                why = play.advance_pod(self.engine, plan, members, _tell)
            if why in ("", "initialising") or (obj.kind in ("Pod", "Job") and why == (
                    self.failed.get(pod))):
                continue
            print(f"{obj.ref}: pod {pod} failed: {why}", flush=True)
            self.failed[pod] = why
            if obj.kind in REPLICATED:
                play.remove_pod(self.engine, pod)
                failed.add(pod)
        return failed

    def _probe(self, records: list[ContainerRecord]) -> None:
        """Hand the prober the controller's probes of the running containers (against
        each pod's address, or in the container); save what they say, and what the
        kubelet part knows of each container."""
        targets = []
        for members in pods_of(records).values():
            holder = infra(members)
            for record in apps(members):
                probes = probes_of(record.spec.labels)
                if holder is None or record.state != "running" or not probes:
                    continue
                address = self._address(holder)
                if address:
                    targets += [Target(record.id, kind, probe, address, _started(record),
                                       self._exec_argv(record.id, probe))
                                for kind, probe in probes.items()]
        self.prober.watch([t for t in targets if t.argv or "exec" not in t.probe])
        alive = {r.id for r in records}
        self.prober.forget(alive)
        self.kubelet.forget({p for p, m in pods_of(records).items() if infra(m) is not None})
        self.exec_argv = {k: v for k, v in self.exec_argv.items() if k[0] in alive}
        if self.state is not None:
            self.prober.save(self.state.with_suffix(".probes"))
            self.kubelet.save(self.state.with_suffix(".restarts"))

    def _address(self, holder: ContainerRecord) -> str:
        return play.pod_address(self.engine, holder)

    def _exec_argv(self, container_id: str, probe: dict[str, Any]) -> tuple[str, ...]:
        """The runtime command that runs an exec probe in the container (made here, in
        the round: the prober's threads never call the engine); () for other kinds,
        or when the container cannot be joined now."""
        if "exec" not in probe:
            return ()
        key = (container_id, tuple(probe["exec"]["command"]))
        if key not in self.exec_argv:
            try:
                self.exec_argv[key] = tuple(self.engine.container_ops.exec_argv(*key))
            except DockyardError:
                return ()
        return self.exec_argv[key]

    def _refresh_services(self) -> None:
        records = self.engine.containers.list(all_containers=True)
        for obj in self.objects:
            if obj.kind == "Service":
                ready = self._endpoints(obj, records)
                if not ready and (self.known.get(obj.ref) or obj.ref not in self.known):
                    print(f"{obj.ref}: no ready endpoints: its connections are refused "
                          f"(selector {obj.body['spec']['selector']})", flush=True)
                new = ready - self.known.get(obj.ref, set())
                self._forget_stale({address for _, address in new},
                                   play.network_name(obj.namespace))
                self.known[obj.ref] = ready
                self.ready[obj.ref] = sorted(address for _, address in ready)
                for proxy in self.proxies.get(obj.ref, []):
                    proxy.follow(bool(ready))

    def _forget_stale(self, new: set[str], network: str) -> None:
        """A new endpoint (pod) may have the address a removed pod had, even within one
        round: the host (where the proxy connects from) forgets that pod's MAC first."""
        from dockyard.network.bridge import forget_neighbour

        if new:
            bridge = self.engine.networks.get(network).bridge
            for address in sorted(new):
                forget_neighbour(bridge, address)

    def _scale(self, obj: KubeObject, pods: Pods, busy: set[str]) -> None:
        """Replace pods that are gone (infra dead, a container removed, finished),
        then one step of scaling or rollout (a ``busy`` pod counts, not ready)."""
        template = obj.body["spec"]["template"]
        current = rollout.template_hash(template)
        wanted = len(template["spec"]["containers"])
        states = []
        for pod, members in sorted(pods.items()):
            holder = infra(members)
            made_from = holder.spec.labels.get(rollout.HASH_LABEL, "") if holder else ""
            if initialising(members) or pod in busy:
                states.append(rollout.PodState(pod, made_from, False))
            elif alive(members, wanted if made_from == current else None):
                states.append(rollout.PodState(pod, made_from, ready(
                    self.engine, members, self.prober.verdicts())))
            else:
                print(f"{obj.ref}: pod {pod} failed: replacing it", flush=True)
                play.remove_pod(self.engine, pod)
        strategy = rollout.strategy_of(obj.kind, obj.body["spec"])
        step = rollout.plan_step(states, current, play.replicas(obj), strategy)
        self._retire(obj, step.retire)
        for _ in range(step.start):
            self._start(obj, play.plan_replica(obj, self.contexts[obj.namespace]))

    def _start(self, obj: KubeObject, plan: PodPlan) -> None:
        try:
            play.start_pod(self.engine, plan, _tell)
        except Exception:
            play.remove_pod(self.engine, plan.name)
            raise
        print(f"{obj.ref}: started pod {plan.name}", flush=True)

    def _retire(self, obj: KubeObject, pods: tuple[str, ...]) -> None:
        """Out of every Service first; gone once the connections the Services' proxies
        relay to them are done (DRAIN seconds at most)."""
        if not pods:
            return
        self.draining |= set(pods)
        self._refresh_services()
        records = self.engine.containers.list(all_containers=True)
        holders = [infra(m) for p, m in pods_of(records).items() if p in pods]
        addresses = {self._address(h) for h in holders if h is not None} - {""}
        proxies = [p for group in self.proxies.values() for p in group]
        deadline = time.monotonic() + DRAIN
        time.sleep(0.2)  # a connection that read the endpoints just before is counted
        while any(p.busy(addresses) for p in proxies) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pod in pods:
            play.remove_pod(self.engine, pod)
            print(f"{obj.ref}: retired pod {pod}", flush=True)
        self.draining -= set(pods)

    def _run_job(self, obj: KubeObject, pods: Pods) -> None:
        """Start pods until ``completions`` succeeded, ``parallelism`` at a time; past
        ``backoffLimit`` failed pods the Job has failed and its running pods go."""
        counts = job_counts(pods)
        completions, parallelism, limit = job_numbers(obj.body["spec"])
        if counts["failed"] > limit or counts["succeeded"] >= completions:
            self._retire(obj, tuple(p for p, m in pods.items() if not finished(m)))
            return
        active = counts["active"]
        for _ in range(min(parallelism - active, completions - counts["succeeded"] - active)):
            self._start(obj, play.plan_replica(obj, self.contexts[obj.namespace]))

    def _endpoints(self, obj: KubeObject,
                   records: list[ContainerRecord]) -> set[tuple[str, str]]:
        """(pod's infra id, address) of each ready pod the Service selects."""
        selector = obj.body["spec"]["selector"]
        addresses = set()
        for pod, members in pods_of(records).items():
            holder = infra(members)
            if holder is None or pod in self.draining:
                continue
            if matches(selector, holder.spec.labels) and ready(self.engine, members,
                                                               self.prober.verdicts()):
                for endpoint in self.engine.networks.endpoints(
                        network=play.network_name(obj.namespace), container_id=holder.id):
                    addresses.add((holder.id, endpoint.address.split("/")[0]))
        return addresses

    def _open_services(self) -> None:
        for obj in self.objects:
            if obj.kind != "Service":
                continue
            holder = self.engine.containers.get(play.service_container(obj))
            for port in obj.body["spec"].get("ports") or []:
                target = resolve_target(port.get("targetPort", port["port"]), self.objects)
                self.proxies.setdefault(obj.ref, []).append(ServiceProxy(
                    holder.pid, int(port["port"]), target, self._ready_of(obj.ref)))

    def _ready_of(self, ref: str) -> Callable[[], list[str]]:
        return lambda: list(self.ready.get(ref, []))


def _tell(message: str) -> None:
    print(message, flush=True)


def _started(record: ContainerRecord) -> float:
    """When the container started, on the monotonic clock."""
    from datetime import datetime

    try:
        wall = datetime.fromisoformat(record.started_at).timestamp()
    except ValueError:
        return time.monotonic()
    return time.monotonic() - max(0.0, time.time() - wall)


def job_numbers(spec: dict[str, Any]) -> tuple[int, int, int]:
    """completions, parallelism, backoffLimit with Kubernetes' defaults."""
    completions = spec.get("completions")
    parallelism = spec.get("parallelism")
    limit = spec.get("backoffLimit")
    return (int(completions if completions is not None else parallelism or 1),
            int(parallelism if parallelism is not None else 1),
            int(limit if limit is not None else 6))


def job_counts(pods: Pods) -> dict[str, int]:
    counts = {"active": 0, "succeeded": 0, "failed": 0}
    for members in pods.values():
        done = finished(members)
        counts[done.lower() if done else "active"] += 1
    return counts


def resolve_target(target: Any, objects: list[KubeObject]) -> int:
    """A Service targetPort: a number, or a container port's name in a pod template."""
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for obj in objects:
        spec = obj.body.get("spec") or {}
        pod = (spec.get("template") or {}).get("spec") or spec
        for container in pod.get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("name") == target:
                    return int(port["containerPort"])
    raise ValueError(f"targetPort {target!r} names no container port")


def main(argv: list[str]) -> None:
    from dockyard.engine.engine import Engine
    from dockyard.store.layout import Layout

    root, state = argv
    engine = Engine(Layout.for_root(root))
    path = Path(state)
    Controller(engine, read_objects(path), path).run(ready=path.with_suffix(".ready"))


if __name__ == "__main__":
    main(sys.argv[1:])
