"""Apply Kubernetes objects to an engine, and remove exactly what was applied.

Everything made is labelled ``io.dockyard.kube.owner=<namespace>.<Kind>.<name>``
(containers, volumes, the project network), so ``down`` of the same files finds it
all, also after a play that failed half-way (which runs ``down`` itself before
raising: nothing stays half-applied).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import Conflict, ContainerNotFound, DockyardError, InvalidArgument, NotFound
from dockyard.kube.load import REPLICATED, WORKLOADS, KubeObject, matches
from dockyard.kube.lower import (
    INFRA_COMMAND,
    LABEL_HOOK,
    LABEL_NONROOT,
    LABEL_OWNER,
    LABEL_POD,
    LABEL_RESTART,
    LABEL_ROLE,
    Context,
    PodPlan,
    config_data,
    config_dir,
    lower_pod,
    pod_key,
)
from dockyard.kube.rollout import HASH_LABEL, bounds, strategy_of, template_hash
from dockyard.store.atomic import atomic_write

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.engine.records import ContainerRecord
    from dockyard.engine.spec import ContainerSpec

NETWORK_LABEL = "io.dockyard.kube.network"


def network_name(namespace: str) -> str:
    return f"kube-{namespace}"


def kube_dir(engine: Engine) -> Path:
    return engine.layout.root / "kube"


def context(engine: Engine, objects: list[KubeObject]) -> Context:
    """The lowering context of one namespace's objects: its network, ConfigMap/Secret
    data and the folders of their files."""
    data: dict[str, dict[str, str]] = {}
    dirs: dict[str, Path] = {}
    for obj in objects:
        if obj.kind in ("ConfigMap", "Secret"):
            data[obj.ref] = config_data(obj.kind, obj.body)
            dirs[obj.ref] = kube_dir(engine) / "config" / obj.namespace / f"{obj.kind}-{obj.name}"
    namespace = next((o.namespace for o in objects if o.kind != "Namespace"), "default")
    return Context(network_name(namespace), namespace, data, dirs, fs_groups(objects))


def fs_groups(objects: list[KubeObject]) -> frozenset[int]:
    """The fsGroups of the objects' pods (each gets its copies of the config files)."""
    found = set()
    for obj in objects:
        if obj.kind in (*WORKLOADS, "Pod"):
            spec = obj.body.get("spec") or {}
            pod = (spec.get("template") or {}).get("spec") or {} if obj.kind != "Pod" else spec
            gid = (pod.get("securityContext") or {}).get("fsGroup")
            if gid is not None:
                found.add(int(gid))
    return frozenset(found)


def plan_of(obj: KubeObject, ctx: Context, pod: str) -> PodPlan:
    """The plan of pod ``pod`` (its Kubernetes name) of ``obj``."""
    if obj.kind == "Pod":
        return lower_pod(obj.name, obj.owner, obj.body.get("metadata") or {},
                         obj.body["spec"], ctx)
    return plan_replica(obj, ctx, pod)


def plan_pods(objects: list[KubeObject], ctx: Context) -> list[tuple[str, PodPlan]]:
    """(owner, plan) of every pod the input asks for: Pods, and Deployment replicas
    (a Job's pods are the controller's to start)."""
    plans = []
    for obj in objects:
        if obj.kind == "Pod":
            plans.append((obj.owner, lower_pod(obj.name, obj.owner, obj.body.get("metadata")
                                               or {}, obj.body["spec"], ctx)))
        elif obj.kind in REPLICATED:
            for _ in range(replicas(obj)):
                plans.append((obj.owner, plan_replica(obj, ctx)))
    return plans


def replicas(obj: KubeObject) -> int:
    """A DaemonSet runs one pod on this host (the only node)."""
    value = obj.body["spec"].get("replicas")
    return 1 if value is None or obj.kind == "DaemonSet" else int(value)


def plan_replica(obj: KubeObject, ctx: Context, pod: str | None = None) -> PodPlan:
    """One pod of ``obj``'s template (named ``pod``, or as Kubernetes names them:
    ``NAME-HASH-xxxxx`` for a Deployment's), labelled with the template's hash."""
    template = obj.body["spec"]["template"]
    digest = template_hash(template)
    suffix = os.urandom(3).hex()[:5]
    if pod is None:
        pod = f"{obj.name}-{digest}-{suffix}" if obj.kind == "Deployment" else (
            f"{obj.name}-{suffix}")
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), HASH_LABEL: digest}
    spec = template["spec"]
    if obj.kind == "Job":  # a failed pod is replaced (and counted against backoffLimit)
        spec = {**spec, "restartPolicy": "Never"}
    return lower_pod(pod, obj.owner, meta, spec, ctx)


def by_namespace(objects: list[KubeObject]) -> dict[str, list[KubeObject]]:
    """The objects of each namespace (Namespace objects, cluster-wide, under "")."""
    groups: dict[str, list[KubeObject]] = {}
    for obj in objects:
        groups.setdefault("" if obj.kind == "Namespace" else obj.namespace, []).append(obj)
    return groups


def apply(engine: Engine, objects: list[KubeObject]) -> list[str]:
    """Make everything; on any failure, remove what was made and raise."""
    if owned(engine, {o.owner for o in objects}):
        return update(engine, objects)
    groups = by_namespace(objects)
    contexts = {ns: context(engine, group) for ns, group in groups.items()}
    plans = {ns: check(engine, group, contexts[ns])  # every error before anything is made
             for ns, group in groups.items()}
    made: list[str] = [f"namespace {o.name}" for o in groups.get("", [])]
    try:
        for ns, group in groups.items():
            if ns:
                made += _make(engine, group, contexts[ns], plans[ns])
    except BaseException:
        down(engine, objects)
        raise
    return made


def _make(engine: Engine, objects: list[KubeObject], ctx: Context,
          plans: list[tuple[str, PodPlan]]) -> list[str]:
    """One namespace's network, config files, volumes, pods and Services."""
    made = []
    ensure_network(engine, ctx)
    write_configs(ctx)
    for obj in objects:
        if obj.kind == "PersistentVolumeClaim":
            name = pod_key(obj.namespace, obj.name)
            engine.volumes.create(name, labels={LABEL_OWNER: obj.owner})
            made.append(f"volume {name}")
    for _, plan in plans:
        told: list[str] = []
        start_pod(engine, plan, told.append)
        made += [f"pod {plan.name}", *told]
    for obj in objects:
        if obj.kind == "Service":
            start_service(engine, obj, ctx, objects)
            made.append(f"service {obj.name}")
    return made


def check(engine: Engine, objects: list[KubeObject], ctx: Context) -> list[tuple[str, PodPlan]]:
    """Lower every pod template and find every image (of Jobs' templates too) and
    strategy: any error before anything is made or changed."""
    plans = plan_pods(objects, ctx)
    images = {s.image for _, p in plans for s in (p.infra, *p.apps, *p.inits)}
    for obj in objects:
        if obj.kind in (*REPLICATED, "Job"):
            plan = plan_replica(obj, ctx)
            images |= {s.image for s in (*plan.apps, *plan.inits)}
        if obj.kind in REPLICATED:
            try:
                bounds(strategy_of(obj.kind, obj.body["spec"]), replicas(obj))
            except InvalidArgument as exc:
                raise InvalidArgument(f"{obj.ref} ({obj.source}): spec.{exc}") from None
    for image in sorted(images):
        engine.images.get(image)
    for obj in objects:  # runAsNonRoot: the image's user, where no runAsUser is given
        if obj.kind in (*REPLICATED, "Job", "Pod"):
            plan = plan_of(obj, ctx, obj.name)
            for spec in (*plan.inits, *plan.apps):
                if spec.labels.get(LABEL_NONROOT) and spec.user is None:
                    _check_non_root(engine, spec, f"{obj.ref} ({obj.source})")
    return plans


def _check_non_root(engine: Engine, spec: ContainerSpec, where: str) -> None:
    """The kubelet's refusal of a runAsNonRoot container whose image runs as root
    (its wording)."""
    config = engine.images.config(engine.images.get(spec.image)).get("config") or {}
    user = str(config.get("User") or "0").split(":")[0]
    name = str(spec.name).rsplit("-", 1)[-1]
    if user in ("0", "root"):
        raise InvalidArgument(f"{where}: container {name}: container has runAsNonRoot and "
                              "image will run as root")
    if not user.isdigit():
        raise InvalidArgument(f"{where}: container {name}: container has runAsNonRoot and "
                              f"image has non-numeric user ({user}), cannot verify user is "
                              "non-root")


def update(engine: Engine, objects: list[KubeObject]) -> list[str]:
    """A play of objects already playing: the controller is handed the new desired
    state (a changed template rolls out per its strategy); Services, and the set of
    objects, stay as they are."""
    from dockyard.kube import controller

    playing = controller.playing(engine, {o.owner for o in objects})
    if playing is None:
        raise Conflict("kube: some of these objects are already playing (with other "
                       "objects, or without a controller): run `dockyard kube down` first")
    path, before = playing
    old = {o.owner: o for o in before}
    for obj in objects:
        if obj.kind in ("Service", "PersistentVolumeClaim", "Namespace") and (
                obj.body.get("spec") != old[obj.owner].body.get("spec")):
            raise Conflict(f"kube: {obj.ref} changed: only workloads, ConfigMaps and "
                           "Secrets change in place; run `dockyard kube down` first")
    for group in by_namespace(objects).values():
        check(engine, group, context(engine, group))
    controller.hand_over(path, objects)
    return [f"{o.ref} {'unchanged' if o.body == old[o.owner].body else 'configured'}"
            for o in objects]


def ensure_network(engine: Engine, ctx: Context) -> None:
    try:
        engine.networks.get(ctx.network)
    except NotFound:
        engine.networks.create(ctx.network, labels={NETWORK_LABEL: ctx.namespace})


def write_configs(ctx: Context) -> None:
    """One file per key of each ConfigMap and Secret (replaced atomically when a
    re-applied play changes them), and a copy for each fsGroup, group-owned by it."""
    from dockyard.fs.ownership import give_group

    for ref, base in ctx.config_dirs.items():
        for gid in (None, *sorted(ctx.fs_groups)):
            folder = config_dir(base, gid)
            folder.mkdir(parents=True, exist_ok=True)
            for key, value in ctx.config_data[ref].items():
                if "/" in key or key in (".", ".."):
                    raise InvalidArgument(f"{ref}: data key {key!r} is not a file name")
                atomic_write(folder / key, value.encode(), 0o644, durable=False)
            if gid is not None:
                give_group(folder, gid, readonly=True)


def start_pod(engine: Engine, plan: PodPlan, tell: Callable[[str], None]) -> None:
    """Create and start one pod: its infra, then its first init container (the
    controller starts the next ones, and then the containers: see ``advance_pod``),
    or its containers at once."""
    for name in plan.volumes:
        engine.volumes.create(name, labels={LABEL_OWNER: plan.infra.labels[LABEL_OWNER],
                                            LABEL_POD: plan.name})
    if plan.fs_group is not None:
        for name in plan.fs_group.volumes:
            engine.volumes.give_group(name, plan.fs_group.gid, on_root_mismatch=(
                plan.fs_group.policy == "OnRootMismatch"))
    engine.containers.create(plan.infra)
    engine.containers.start(plan.name)
    why = advance_pod(engine, plan, [], tell)
    if why not in ("", "initialising"):
        raise DockyardError(f"pod {plan.name}: {why}")


def advance_pod(engine: Engine, plan: PodPlan, members: list[ContainerRecord],
                tell: Callable[[str], None]) -> str:
    """One step of a pod's start, from what exists (``members``): the next init
    container once the one before exited 0, then the containers.  Returns "" once
    the containers are started, "initialising" while an init container runs, or why
    the pod failed (an init container exited otherwise).  A container whose
    postStart handler fails is killed, as the kubelet kills it (``tell`` says so):
    the controller restarts it per the pod's restartPolicy."""
    made = {r.name: r for r in members}
    for spec in plan.inits:
        record = made.get(str(spec.name))
        if record is None:
            engine.containers.create(spec)
            engine.containers.start(str(spec.name))
            return "initialising"
        if record.state != "exited":
            return "initialising"
        if record.exit_code != 0:
            return f"init container {spec.name} exited with code {record.exit_code}"
    for spec in plan.apps:
        if str(spec.name) not in made:
            engine.containers.create(spec)
            engine.containers.start(str(spec.name))
            post_start(engine, engine.containers.get(str(spec.name)),
                       engine.containers.get(plan.name), tell)
    return ""


def post_start(engine: Engine, record: ContainerRecord, holder: ContainerRecord,
               tell: Callable[[str], None]) -> bool:
    """The container's postStart handler, once it has started; when it fails the
    container is ended (preStop, grace period) as the kubelet ends it.  Whether it
    passed (or there was none)."""
    hook = record.spec.labels.get(f"{LABEL_HOOK}postStart")
    why = run_handler(engine, record.id, json.loads(hook), 30, lambda: pod_address(
        engine, holder)) if hook else ""
    if why:
        tell(f"pod {record.spec.labels.get(LABEL_POD)}: postStart hook of {record.name} "
             f"failed: {why}: the container is killed (restartPolicy "
             f"{record.spec.labels.get(LABEL_RESTART, 'Never')})")
        end_containers(engine, [record], holder, kill=True)
    return not why


def run_handler(engine: Engine, container: str, handler: dict[str, Any], timeout: float,
                address: Callable[[], str]) -> str:
    """A lifecycle handler (exec, httpGet or sleep) for the container; "" once it
    succeeded, or what went wrong.  An httpGet goes from the host to ``host``, or to
    the pod's ``address()``, and succeeds on any HTTP answer (as the kubelet's)."""
    if "exec" in handler:
        code = exec_in(engine, container, tuple(handler["exec"]["command"]), timeout)
        return "" if code == 0 else (f"timed out after {timeout:g}s" if code == -1 else
                                     f"exited with code {code}")
    if "sleep" in handler:
        time.sleep(max(0.0, min(timeout, float(handler["sleep"]["seconds"]))))
        return ""
    from dockyard.kube.prober import http_get

    action = handler["httpGet"]
    host = action.get("host") or address()
    try:
        http_get(host, action, timeout)
    except OSError as exc:
        return f"GET http://{host}:{action['port']}{action.get('path') or '/'}: {exc}"
    return ""


def exec_in(engine: Engine, container: str, command: tuple[str, ...], timeout: float) -> int:
    """``command`` run in the container; its exit code (-1 past ``timeout``, or when
    the container cannot be joined)."""
    import subprocess

    try:
        argv = engine.container_ops.exec_argv(container, command)
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout).returncode
    except (subprocess.TimeoutExpired, DockyardError):
        return -1


def pod_address(engine: Engine, holder: ContainerRecord) -> str:
    """The pod's address on its namespace's network (where its infra is)."""
    found = engine.networks.endpoints(network=holder.spec.network_mode,
                                      container_id=holder.id)
    return found[0].address.split("/")[0] if found else ""


def start_service(engine: Engine, obj: KubeObject, ctx: Context,
                  objects: list[KubeObject]) -> None:
    """A Service's holder: a container on the project network answering to the
    Service's DNS names, whose network namespace the controller's proxy listens in;
    a NodePort is published on the host from it."""
    from dockyard.engine.spec import ContainerSpec, PortSpec

    spec = obj.body["spec"]
    image = service_image(engine, obj, objects)
    ports = tuple(PortSpec("", int(p["nodePort"]), int(p["port"]))
                  for p in spec.get("ports") or [] if p.get("nodePort"))
    fqdn = f"{obj.name}.{obj.namespace}.svc.cluster.local"
    engine.containers.create(ContainerSpec(
        image=image, name=service_container(obj), entrypoint=INFRA_COMMAND[:1],
        command=INFRA_COMMAND[1:], labels={LABEL_OWNER: obj.owner, LABEL_ROLE: "service"},
        network_mode=ctx.network, network_aliases=(obj.name, fqdn), ports=ports))
    engine.containers.start(service_container(obj))


def service_container(obj: KubeObject) -> str:
    return f"svc-{obj.namespace}-{obj.name}"


def service_image(engine: Engine, obj: KubeObject, objects: list[KubeObject]) -> str:
    """The image the Service's holder sleeps in: that of a pod it selects (or of a
    template it selects: a Job's pods start later)."""
    selector = obj.body["spec"]["selector"]
    for record in engine.containers.list(all_containers=True):
        if record.spec.labels.get(LABEL_ROLE) == "infra" and matches(selector,
                                                                     record.spec.labels):
            return record.spec.image
    for other in objects:
        template = (other.body.get("spec") or {}).get("template") or {}
        if matches(selector, (template.get("metadata") or {}).get("labels") or {}):
            return str(template["spec"]["containers"][0]["image"])
    raise InvalidArgument(f"{obj.ref}: spec.selector matches no pod")


def owned(engine: Engine, owners: Iterable[str]) -> list[ContainerRecord]:
    wanted = set(owners)
    return [r for r in engine.containers.list(all_containers=True)
            if r.spec.labels.get(LABEL_OWNER) in wanted]


def remove_pod(engine: Engine, pod: str) -> None:
    """Every container of the pod (apps first, infra last) and its emptyDir volumes."""
    records = [r for r in engine.containers.list(all_containers=True)
               if r.spec.labels.get(LABEL_POD) == pod]
    records.sort(key=lambda r: r.spec.labels.get(LABEL_ROLE) == "infra")
    holder = next((r for r in records if r.spec.labels.get(LABEL_ROLE) == "infra"), None)
    end_containers(engine, records, holder)
    for record in records:
        _remove_container(engine, record.id)
    for volume in engine.volumes.all():
        if volume.labels.get(LABEL_POD) == pod:
            _remove_volume(engine, volume.name)


def end_containers(engine: Engine, records: list[ContainerRecord],
                   holder: ContainerRecord | None, *, kill: bool = False) -> None:
    """The graceful end of a pod's containers (or of one), when the pod has preStop
    hooks or a ``terminationGracePeriodSeconds`` (30 s by default, as Kubernetes):
    within that one period, each running container's preStop hook, then its stop
    signal, then SIGKILL once the period is over — the containers all at once, each
    in a thread of its own, as the kubelet ends them.  Without either, they are
    killed at once (``kill``), or left to the caller's forced removal.

    The threads call the engine: its database connection is shared by a process's
    threads under its lock (as the builder's parallel stages share it), and each
    container's start, stop and exec take only that container's lock and files."""
    running = [r for r in records if r.state == "running" and r.spec.labels.get(
        LABEL_ROLE) in ("app", "init")]
    graceful = any(r.spec.stop_timeout is not None or f"{LABEL_HOOK}preStop" in r.spec.labels
                   for r in running)
    if not graceful:
        for record in running if kill else []:
            with contextlib.suppress(DockyardError):
                engine.containers.kill(record.id)
        return
    grace = next((r.spec.stop_timeout for r in running if r.spec.stop_timeout is not None), 30)
    deadline = time.monotonic() + grace
    address = (lambda: pod_address(engine, holder)) if holder is not None else (lambda: "")
    threads = [threading.Thread(target=_end_one, args=(engine, r, deadline, address),
                                name=f"end {r.name}") for r in running]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _end_one(engine: Engine, record: ContainerRecord, deadline: float,
             address: Callable[[], str]) -> None:
    """One container's end: its preStop hook, then its stop signal, SIGKILL at
    ``deadline``."""
    hook = record.spec.labels.get(f"{LABEL_HOOK}preStop")
    with contextlib.suppress(DockyardError):
        if hook:
            run_handler(engine, record.id, json.loads(hook),
                        max(0.0, deadline - time.monotonic()), address)
        engine.containers.stop(record.id, timeout=max(0, int(deadline - time.monotonic())))


def _remove_container(engine: Engine, ref: str) -> None:
    with contextlib.suppress(ContainerNotFound):
        engine.containers.remove(ref, force=True, volumes=True)


def _remove_volume(engine: Engine, name: str) -> None:
    engine.containers.unmount_volume(name)
    with contextlib.suppress(NotFound):
        engine.volumes.remove(name, engine.containers.volume_users(name))


def down(engine: Engine, objects: list[KubeObject]) -> list[str]:
    """Remove everything the objects' play made: its controller first (so nothing is
    replaced meanwhile), then containers, volumes, config files, and the network
    once no container uses it."""
    from dockyard.kube import controller

    owners = {o.owner for o in objects}
    removed = controller.stop_for(engine, owners)
    records = owned(engine, owners)
    for pod in sorted({r.spec.labels[LABEL_POD] for r in records if LABEL_POD in r.spec.labels}):
        remove_pod(engine, pod)
        removed.append(f"pod {pod}")
    for record in owned(engine, owners):
        _remove_container(engine, record.id)
        removed.append(f"container {record.name}")
    for volume in engine.volumes.all():
        if volume.labels.get(LABEL_OWNER) in owners:
            _remove_volume(engine, volume.name)
            removed.append(f"volume {volume.name}")
    for ns, group in by_namespace(objects).items():
        ctx = context(engine, group)
        for folder in ctx.config_dirs.values():
            for copy in (folder, *folder.parent.glob(f"{folder.name}.fsgroup-*")):
                shutil.rmtree(copy, ignore_errors=True)
        if ns:
            _remove_network(engine, ctx.network)
    return removed


def _remove_network(engine: Engine, name: str) -> None:
    try:
        record = engine.networks.get(name)
    except NotFound:
        return
    if NETWORK_LABEL in record.labels and not engine.networks.endpoints(network=name):
        engine.networks.remove(name)
