"""The reconcile loop of one play: keeps each Deployment at its replicas (a pod
whose infra or container died is removed and replaced) and serves each Service's
ClusterIP over the ready pods its selector matches.

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
from dockyard.kube import play
from dockyard.kube.load import REPLICATED, KubeObject, matches
from dockyard.kube.lower import LABEL_OWNER, LABEL_POD, LABEL_PROBE, LABEL_ROLE, Context
from dockyard.kube.proxy import ServiceProxy, listen_in_netns

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.engine.records import ContainerRecord

MARKER = "dockyard.kube.controller"
PERIOD = 0.5


def state_dir(engine: Engine) -> Path:
    return play.kube_dir(engine) / "controllers"


def write_state(engine: Engine, objects: list[KubeObject]) -> Path:
    folder = state_dir(engine)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.urandom(6).hex()}.json"
    path.write_text(json.dumps({"pid": 0, "objects": [o._asdict() for o in objects]}))
    return path


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
    path.write_text(json.dumps(state))


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
        for suffix in (".json", ".log", ".ready"):
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
        Controller(engine, objects).run()
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
    def __init__(self, engine: Engine, objects: list[KubeObject]) -> None:
        self.engine = engine
        self.objects = objects
        self.ctx: Context = play.context(engine, objects)
        self.proxies: list[ServiceProxy] = []
        self.ready: dict[str, list[str]] = {}  # Service ref → ready pod addresses
        self.known: dict[str, set[tuple[str, str]]] = {}  # … → (pod infra id, address)
        self.stopping = False

    def run(self, ready: Path | None = None) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self._open_services()
        self.reconcile()  # endpoints known before anyone is told the play is up
        if ready is not None:
            ready.touch()
        while not self.stopping:
            try:
                self.reconcile()
            except Exception:  # a bad round is logged; the next one tries again
                traceback.print_exc()
            time.sleep(PERIOD)
        for proxy in self.proxies:
            proxy.close()

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def reconcile(self) -> None:
        records = self.engine.containers.list(all_containers=True)
        for obj in self.objects:
            if obj.kind in REPLICATED:
                self._scale(obj, [r for r in records if r.spec.labels.get(LABEL_OWNER)
                                  == obj.owner])
        records = self.engine.containers.list(all_containers=True)
        for obj in self.objects:
            if obj.kind == "Service":
                ready = self._endpoints(obj, records)
                new = ready - self.known.get(obj.ref, set())
                self._forget_stale({address for _, address in new})
                self.known[obj.ref] = ready
                self.ready[obj.ref] = sorted(address for _, address in ready)

    def _forget_stale(self, new: set[str]) -> None:
        """A new endpoint (pod) may have the address a removed pod had, even within one
        round: the host (where the proxy connects from) forgets that pod's MAC first."""
        from dockyard.network.bridge import forget_neighbour

        if new:
            bridge = self.engine.networks.get(self.ctx.network).bridge
            for address in sorted(new):
                forget_neighbour(bridge, address)

    def _scale(self, obj: KubeObject, records: list[ContainerRecord]) -> None:
        pods: dict[str, list[ContainerRecord]] = {}
        for record in records:
            pods.setdefault(record.spec.labels.get(LABEL_POD, ""), []).append(record)
        healthy = []
        for pod, members in sorted(pods.items()):
            if pod and pod_healthy(members, obj) and not self._unhealthy(members):
                healthy.append(pod)
            elif pod:
                print(f"{obj.ref}: pod {pod} failed: replacing it", flush=True)
                play.remove_pod(self.engine, pod)
        for pod in healthy[play.replicas(obj):]:
            play.remove_pod(self.engine, pod)
        for _ in range(play.replicas(obj) - len(healthy)):
            plan = play.plan_replica(obj, self.ctx)
            try:
                play.start_pod(self.engine, plan)
            except Exception:
                play.remove_pod(self.engine, plan.name)
                raise
            print(f"{obj.ref}: started pod {plan.name}", flush=True)

    def _unhealthy(self, members: list[ContainerRecord]) -> bool:
        """A container's livenessProbe (its healthcheck) says unhealthy."""
        return any(self._health(r) == "unhealthy" for r in members
                   if r.spec.labels.get(LABEL_PROBE) == "liveness")

    def _ready(self, members: list[ContainerRecord]) -> bool:
        """Every readinessProbe of the pod passes (its healthcheck says healthy)."""
        return all(self._health(r) == "healthy" for r in members
                   if r.spec.labels.get(LABEL_PROBE) == "readiness")

    def _health(self, record: ContainerRecord) -> str:
        if record.spec.healthcheck is None or record.state != "running":
            return ""
        with contextlib.suppress(DockyardError):
            health = self.engine.containers.inspect(record.id)["State"].get("Health")
            return str((health or {}).get("Status", ""))
        return ""

    def _endpoints(self, obj: KubeObject,
                   records: list[ContainerRecord]) -> set[tuple[str, str]]:
        """(pod's infra id, address) of each running pod the Service selects."""
        selector = obj.body["spec"]["selector"]
        pods: dict[str, list[ContainerRecord]] = {}
        for record in records:
            if LABEL_POD in record.spec.labels:
                pods.setdefault(record.spec.labels[LABEL_POD], []).append(record)
        addresses = set()
        for members in pods.values():
            infra = [r for r in members if r.spec.labels.get(LABEL_ROLE) == "infra"]
            if infra and matches(selector, infra[0].spec.labels) and pod_healthy(
                    members, None) and self._ready(members):
                for endpoint in self.engine.networks.endpoints(network=self.ctx.network,
                                                               container_id=infra[0].id):
                    addresses.add((infra[0].id, endpoint.address.split("/")[0]))
        return addresses

    def _open_services(self) -> None:
        for obj in self.objects:
            if obj.kind != "Service":
                continue
            holder = self.engine.containers.get(play.service_container(obj))
            for port in obj.body["spec"].get("ports") or []:
                listener = listen_in_netns(holder.pid, int(port["port"]))
                target = resolve_target(port.get("targetPort", port["port"]), self.objects)
                proxy = ServiceProxy(listener, target, self._ready_of(obj.ref))
                proxy.start()
                self.proxies.append(proxy)


    def _ready_of(self, ref: str) -> Callable[[], list[str]]:
        return lambda: list(self.ready.get(ref, []))


def pod_healthy(members: list[ContainerRecord], obj: KubeObject | None) -> bool:
    """The infra runs, every container of the template exists, and none that should
    run (restart always) has stopped for good."""
    infra = [r for r in members if r.spec.labels.get(LABEL_ROLE) == "infra"]
    if not infra or infra[0].state != "running":
        return False
    apps = [r for r in members if r.spec.labels.get(LABEL_ROLE) == "app"]
    if obj is not None:
        wanted = len(obj.body["spec"]["template"]["spec"]["containers"])
        if len(apps) != wanted:
            return False
    return all(r.state in ("running", "restarting", "paused") or r.spec.restart.name != "always"
               for r in apps)


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
    Controller(engine, read_objects(Path(state))).run(ready=Path(state).with_suffix(".ready"))


if __name__ == "__main__":
    main(sys.argv[1:])
