"""Containers or a compose project → Kubernetes YAML: per app a workload (a
Deployment, or a Pod, Job or DaemonSet), a Service for its ports, a ConfigMap for
its env files, ConfigMaps and Secrets for its compose configs and secrets, a PVC
per named volume, and initContainers that wait on the Services of what it depends
on.  Every document is checked against the same schemas ``kube play`` uses.

The input is plain data (``App``): the CLI reads containers through the ``Engine``
and compose files through ``dockyard.compose`` (which sits above this package) and
hands over ``App``s; ``apps_from_compose`` reads a compose plan by its fields.
"""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from dockyard.errors import InternalError, InvalidArgument
from dockyard.kube.load import K8S_VERSION, schema_error

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.engine.spec import ContainerSpec, Healthcheck, MountSpec

KINDS = ("Deployment", "Pod", "Job", "DaemonSet")
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"


class FileSource(NamedTuple):
    """A compose config or secret: a file the container sees at ``target``."""
    kind: str  # ConfigMap | Secret
    data: str
    target: str


class App(NamedTuple):
    name: str  # as a Kubernetes name (RFC 1123 label)
    spec: ContainerSpec
    replicas: int = 1
    depends_on: tuple[str, ...] = ()  # names of the apps it waits for
    env_file: dict[str, str] = {}  # what came from env files: a ConfigMap of its own
    files: tuple[FileSource, ...] = ()
    more: tuple[tuple[str, ContainerSpec], ...] = ()  # a pod's other containers (name, spec)
    inits: tuple[tuple[str, ContainerSpec], ...] = ()  # … and its init containers
    container: str = ""  # the first container's name (default: the app's)


def dns_name(name: str) -> str:
    """A container or service name as a Kubernetes object name (RFC 1123 label)."""
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return text[:63].rstrip("-") or "app"


def render(documents: list[dict[str, Any]]) -> str:
    import yaml

    for doc in documents:
        error = schema_error(doc)
        if error:  # a bug here, not the user's input
            raise InternalError(f"kube generate made an invalid {doc['kind']} (Kubernetes "
                                f"{K8S_VERSION}): {error}")
    head = f"# Kubernetes {K8S_VERSION} objects (schema-checked), from dockyard kube generate\n"
    return head + str(yaml.safe_dump_all(documents, sort_keys=False))


def apps_of_containers(engine: Engine, refs: list[str]) -> list[App]:
    """A container each; a pod that ``kube play`` made (named by its infra, the
    pod's name) with all its containers."""
    from dockyard.kube.lower import LABEL_POD, LABEL_ROLE

    apps = []
    for record in (engine.containers.get(ref) for ref in refs):
        labels = record.spec.labels
        if labels.get(LABEL_ROLE) != "infra":
            apps.append(App(dns_name(record.name), record.spec))
            continue
        members = [r for r in engine.containers.list(all_containers=True)
                   if r.spec.labels.get(LABEL_POD) == labels[LABEL_POD]]
        members.sort(key=lambda r: r.created)

        containers, inits = ([(dns_name(r.name[len(record.name) + 1:]), _bare(r.spec))
                              for r in members if r.spec.labels.get(LABEL_ROLE) == role]
                             for role in ("app", "init"))
        if not containers:
            raise InvalidArgument(f"kube generate: pod {record.name} has no containers yet")
        first = containers[0][1]._replace(ports=record.spec.ports)  # the infra's hostPorts
        name = record.spec.hostname or record.name
        apps.append(App(dns_name(name), first, more=tuple(containers[1:]),
                        inits=tuple(inits), container=containers[0][0]))
    return apps


def _bare(spec: ContainerSpec) -> ContainerSpec:
    """A pod member's spec without what play added: labels, the infra's namespaces."""
    return spec._replace(labels={}, network_mode="bridge", ipc_mode=None, uts_mode=None)


def project_containers(engine: Engine, project: str) -> list[str]:
    """Names of the containers of compose project ``project`` (first of each service)."""
    seen: dict[str, str] = {}
    for record in sorted(engine.containers.list(all_containers=True), key=lambda r: r.name):
        labels = record.spec.labels
        if labels.get(COMPOSE_PROJECT) == project:
            seen.setdefault(labels.get(COMPOSE_SERVICE, record.name), record.name)
    return list(seen.values())


def apps_from_compose(plan: Any) -> list[App]:
    """A compose ``ProjectPlan`` (read by its fields: services with ``spec``,
    ``replicas``, ``depends_on``; ``doc``; ``working_dir``) → apps."""
    from dockyard.engine.flags import env_file as read

    apps = []
    for name, service in plan.services.items():
        raw = (plan.doc.get("services") or {}).get(name) or {}
        env_file: dict[str, str] = {}
        for item in _as_list(raw.get("env_file")):
            path = plan.working_dir / (item if isinstance(item, str) else item["path"])
            if path.is_file():
                env_file.update(dict(line.partition("=")[::2] for line in read(str(path))))
        files = tuple(_compose_files(plan, name, raw))
        apps.append(App(dns_name(name), service.spec._replace(labels={}),
                        int(service.replicas),
                        tuple(dns_name(d) for d in service.depends_on), env_file, files))
    return apps


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else ([value] if value else [])


def _compose_files(plan: Any, service: str, raw: dict[str, Any]) -> list[FileSource]:
    found = []
    for key, kind, default_dir in (("configs", "ConfigMap", "/"),
                                   ("secrets", "Secret", "/run/secrets")):
        declared = plan.doc.get(key) or {}
        for item in raw.get(key) or []:
            source = item if isinstance(item, str) else item["source"]
            target = item.get("target") if isinstance(item, dict) else None
            top = declared.get(source) or {}
            if "file" not in top:
                raise InvalidArgument(f"services.{service}.{key}: {source}: only file-based "
                                      f"{key} become {kind}s")
            path = plan.working_dir / top["file"]
            try:
                data = path.read_text()
            except OSError as exc:
                raise InvalidArgument(f"{key}.{source}: cannot read {path}: "
                                      f"{exc.strerror}") from exc
            where = target or posixpath.join(default_dir, source)
            if not where.startswith("/"):
                where = posixpath.join(default_dir, where)
            found.append(FileSource(kind, data, where))
    return found


def documents(apps: list[App], *, kind: str = "Deployment",
              image_of: Any = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The objects of ``apps`` (and warnings: what has no Kubernetes form here).
    ``image_of(image)`` pins an image reference (``--pin``)."""
    if kind not in KINDS:
        raise InvalidArgument(f"kube generate: --kind {kind!r} is not one of "
                              f"{', '.join(KINDS)}")
    warnings: list[str] = []
    services = {app.name: app for app in apps if app.spec.ports}
    out: list[dict[str, Any]] = []
    claims: list[str] = []
    for app in apps:
        pod, extra = _pod(app, image_of or (lambda i: i), services, warnings)
        for claim in _claims(app):
            if claim not in claims:
                claims.append(claim)
                out.append(_pvc(claim))
        out += extra
        out.append(_workload(app, kind, pod))
        if app.spec.ports:
            out.append(_service(app))
    return out, warnings


def _meta(name: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "labels": {"app": name}, **more}


def _workload(app: App, kind: str, pod: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": app.name}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(app.name), "spec": pod}
    template = {"metadata": {"labels": labels}, "spec": pod}
    if kind == "Job":
        template["spec"] = {**pod, "restartPolicy": "Never"}
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(app.name),
                "spec": {"backoffLimit": 0, "template": template}}
    spec: dict[str, Any] = {"selector": {"matchLabels": labels}, "template": template}
    if kind == "Deployment":
        spec = {"replicas": app.replicas, **spec}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": _meta(app.name), "spec": spec}


def _service(app: App) -> dict[str, Any]:
    """ClusterIP on each container port (what the app's peers connect to, as on a
    compose network); the host side of a published port is the cluster's to choose."""
    ports = []
    for p in app.spec.ports:
        entry = {"name": f"{p.protocol}-{p.container_port}", "protocol": p.protocol.upper(),
                 "port": p.container_port, "targetPort": p.container_port}
        if entry not in ports:
            ports.append(entry)
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(app.name),
            "spec": {"selector": {"app": app.name}, "ports": ports}}


def _pvc(claim: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}


def _claims(app: App) -> list[str]:
    specs = [app.spec, *(s for _, s in (*app.more, *app.inits))]
    return [dns_name(m.source) for spec in specs for m in spec.mounts
            if m.type == "volume" and m.source]


def _pod(app: App, pin: Any, services: dict[str, App],
         warnings: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    image = pin(app.spec.image)
    container = _container(app.container or app.name, app.spec, image,
                           behind_service=bool(app.spec.ports))
    volumes, mounts, extra = _volumes(app, warnings)
    others = []
    for n, (name, spec) in enumerate((*app.inits, *app.more)):
        other = _container(name, spec, pin(spec.image), behind_service=False)
        more_volumes, more_mounts = _mounts_of(spec, f"c{n}", warnings, app.name)
        volumes += [v for v in more_volumes if v not in volumes]
        if more_mounts:
            other["volumeMounts"] = more_mounts
        others.append(other)
    if app.env_file:
        config = f"{app.name}-env"
        extra.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config},
                      "data": dict(app.env_file)})
        container["envFrom"] = [{"configMapRef": {"name": config}}]
        env = [e for e in container.get("env", []) if app.env_file.get(e["name"]) != e["value"]]
        if env:
            container["env"] = env
        else:
            container.pop("env", None)
    if mounts:
        container["volumeMounts"] = mounts
    pod: dict[str, Any] = {}
    waits = [_wait(dep, services[dep], image) for dep in app.depends_on if dep in services]
    for dep in app.depends_on:
        if dep not in services:
            warnings.append(f"{app.name}: depends on {dep}, which publishes no port: no "
                            "Service to wait on (not waited for)")
    waits += others[:len(app.inits)]
    if waits:
        pod["initContainers"] = waits
    pod["containers"] = [container, *others[len(app.inits):]]
    if volumes:
        pod["volumes"] = volumes
    return pod, extra


def _wait(dep: str, target: App, image: str) -> dict[str, Any]:
    """An initContainer (in the app's own image: it needs sh and nc) that waits
    until the dependency's Service accepts a connection."""
    port = target.spec.ports[0].container_port
    return {"name": f"wait-for-{dep}"[:63], "image": image, "command": [
        "sh", "-c", f"until nc -w 2 {dep} {port} </dev/null; do echo waiting for {dep}; "
        "sleep 1; done"]}


def _volumes(app: App, warnings: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                     list[dict[str, Any]]]:
    volumes, mounts = _mounts_of(app.spec, "", warnings, app.name)
    extra: list[dict[str, Any]] = []
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for source in app.files:
        folder, key = posixpath.split(source.target)
        groups.setdefault((source.kind, folder), {})[key] = source.data
    for n, ((kind, folder), data) in enumerate(sorted(groups.items())):
        if folder == "/":
            raise InvalidArgument(f"{app.name}: a {kind} file directly under / cannot be "
                                  "mounted: give it a target in a directory")
        name = f"{app.name}-{'config' if kind == 'ConfigMap' else 'secret'}-{n}"
        body = {"data": data} if kind == "ConfigMap" else {"stringData": data}
        extra.append({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, **body})
        key = "configMap" if kind == "ConfigMap" else "secret"
        ref = {"name": name} if kind == "ConfigMap" else {"secretName": name}
        volumes.append({"name": name, key: ref})
        mounts.append({"name": name, "mountPath": folder, "readOnly": True})
    return volumes, mounts, extra


def _mounts_of(spec: ContainerSpec, prefix: str, warnings: list[str],
               app: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The volumes one container's mounts need, and its volumeMounts."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for i, mount in enumerate(spec.mounts):
        volume = _volume(mount, f"{prefix}vol-{i}", warnings, app)
        if volume is not None:
            volumes.append(volume)
            mounts.append({"name": volume["name"], "mountPath": mount.target,
                           **({"readOnly": True} if mount.readonly else {})})
    for i, tmpfs in enumerate(spec.tmpfs):
        volumes.append({"name": f"{prefix}tmp-{i}", "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": f"{prefix}tmp-{i}", "mountPath": tmpfs.target})
    return volumes, mounts


def _volume(mount: MountSpec, name: str, warnings: list[str], app: str) -> dict[str, Any] | None:
    if mount.type == "volume" and mount.source:
        claim = dns_name(mount.source)
        return {"name": claim, "persistentVolumeClaim": {"claimName": claim}}
    if mount.type == "volume":
        return {"name": name, "emptyDir": {}}
    if mount.type == "tmpfs":
        return {"name": name, "emptyDir": {"medium": "Memory"}}
    if mount.type == "bind":
        warnings.append(f"{app}: bind mount {mount.source} → {mount.target} becomes a "
                        "hostPath volume (it exists only on the node that has it)")
        return {"name": name, "hostPath": {"path": mount.source}}
    warnings.append(f"{app}: {mount.type} mount at {mount.target} has no Kubernetes form: "
                    "left out")
    return None


def _container(name: str, spec: ContainerSpec, image: str, *,
               behind_service: bool) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image}
    if spec.entrypoint is not None:
        container["command"] = list(spec.entrypoint)
    if spec.command is not None:
        container["args"] = list(spec.command)
    if spec.working_dir:
        container["workingDir"] = spec.working_dir
    if spec.env:
        container["env"] = [{"name": k, "value": v}
                            for k, _, v in (item.partition("=") for item in spec.env)]
    if spec.ports:
        seen = {(p.container_port, p.protocol) for p in spec.ports}
        container["ports"] = [{"containerPort": port, "protocol": protocol.upper()}
                              for port, protocol in sorted(seen)]
    limits = {}
    if spec.memory:
        limits["memory"] = str(spec.memory)
    if spec.nano_cpus:
        limits["cpu"] = f"{spec.nano_cpus // 1_000_000}m"
    if limits:
        container["resources"] = {"limits": limits}
    if spec.memory_reservation:
        container.setdefault("resources", {})["requests"] = {
            "memory": str(spec.memory_reservation)}
    probe = _probe(spec.healthcheck)
    if probe:  # behind a Service, health decides who gets traffic
        container["readinessProbe" if behind_service else "livenessProbe"] = probe
    security = _security(spec)
    if security:
        container["securityContext"] = security
    return container


def _probe(check: Healthcheck | None) -> dict[str, Any] | None:
    if check is None or not check.test or check.test[0] == "NONE":
        return None
    command = list(check.test[1:]) if check.test[0] == "CMD" else [
        "/bin/sh", "-c", " ".join(check.test[1:])]
    # (an unset field is Docker's default: 30 s, 30 s, 3 retries)
    return {"exec": {"command": command}, "periodSeconds": max(1, int(check.interval or 30)),
            "timeoutSeconds": max(1, int(check.timeout or 30)),
            "failureThreshold": check.retries or 3,
            "initialDelaySeconds": int(check.start_period)}


def _security(spec: ContainerSpec) -> dict[str, Any]:
    security: dict[str, Any] = {}
    if spec.user and spec.user.split(":")[0].isdigit():
        security["runAsUser"] = int(spec.user.split(":")[0])
    if spec.read_only:
        security["readOnlyRootFilesystem"] = True
    if spec.cap_add or spec.cap_drop:
        security["capabilities"] = {k: list(v) for k, v in (
            ("add", spec.cap_add), ("drop", spec.cap_drop)) if v}
    if spec.privileged:
        security["privileged"] = True
    return security


