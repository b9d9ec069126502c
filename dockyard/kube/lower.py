"""A pod template → the ``ContainerSpec``s of one pod: an infra container that holds
the pod's network, IPC and UTS namespaces (and publishes its hostPorts), its
initContainers in order, and its containers, which join the infra's namespaces.

Pure: every input (ConfigMap and Secret data, where their files live) is passed in.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, NamedTuple

from dockyard.engine.spec import ContainerSpec, Healthcheck, MountSpec, PortSpec, RestartPolicy
from dockyard.errors import InvalidArgument

LABEL_OWNER = "io.dockyard.kube.owner"  # namespace.Kind.name of the object that made it
LABEL_POD = "io.dockyard.kube.pod"
LABEL_ROLE = "io.dockyard.kube.role"  # infra | init | app | service
LABEL_PROBE = "io.dockyard.kube.probe"  # liveness | readiness: what the healthcheck is
LABEL_HOOK = "io.dockyard.kube.lifecycle."  # + postStart | preStop: the handler (JSON)
LABEL_NONROOT = "io.dockyard.kube.run-as-non-root"  # the image's user is checked
LABEL_RESTART = "io.dockyard.kube.restart-policy"  # the pod's restartPolicy (the kubelet's)
INFRA_COMMAND = ("sleep", "2147483647")  # the pod's holder: the first image's sleep


class Context(NamedTuple):
    network: str
    namespace: str
    config_data: dict[str, dict[str, str]]  # "ConfigMap/name" or "Secret/name" → data
    config_dirs: dict[str, Path]  # same keys → host dir holding one file per key
    fs_groups: frozenset[int] = frozenset()  # the pods' fsGroups (their config copies)


class FsGroup(NamedTuple):
    """A pod's ``securityContext.fsGroup``: the volumes it applies to (named volumes:
    emptyDir and persistentVolumeClaim) and ``fsGroupChangePolicy``."""

    gid: int
    volumes: tuple[str, ...]
    policy: str = "Always"  # or OnRootMismatch


class PodPlan(NamedTuple):
    name: str
    infra: ContainerSpec
    inits: tuple[ContainerSpec, ...]
    apps: tuple[ContainerSpec, ...]
    volumes: tuple[str, ...]  # emptyDir volumes made for this pod (removed with it)
    fs_group: FsGroup | None = None


def config_data(obj_kind: str, body: dict[str, Any]) -> dict[str, str]:
    """A ConfigMap's or Secret's data as text (Secret ``data`` is base64)."""
    data = {k: str(v) for k, v in (body.get("stringData") or {}).items()}
    raw = body.get("data") or {}
    for key, value in raw.items():
        if obj_kind == "Secret":
            try:
                data[key] = base64.b64decode(str(value), validate=True).decode()
            except ValueError as exc:
                raise InvalidArgument(f"Secret/{body['metadata']['name']}: data.{key}: not "
                                      "base64 text") from exc
        else:
            data[key] = str(value)
    return data


def lower_pod(pod: str, owner: str, meta: dict[str, Any], spec: dict[str, Any],
              ctx: Context) -> PodPlan:
    """The specs of pod ``pod`` from a pod ``spec`` (a Pod's, or a template's)."""
    name, key = pod, pod_key(ctx.namespace, pod)
    base = {LABEL_OWNER: owner, LABEL_POD: key}
    containers = spec["containers"]
    ports = tuple(p for c in containers for p in _ports(c))
    pod_security = spec.get("securityContext") or {}
    fs_gid = pod_security.get("fsGroup")
    mounts, volumes = _volumes(key, spec.get("volumes") or [], ctx, fs_gid)
    infra = ContainerSpec(
        image=containers[0]["image"], name=key, entrypoint=INFRA_COMMAND[:1],
        command=INFRA_COMMAND[1:], hostname=spec.get("hostname") or pod,
        labels={**(meta.get("labels") or {}), **base, LABEL_ROLE: "infra"},
        network_mode=ctx.network, network_aliases=(pod,), ports=ports, init=False)
    env_ctx = {"metadata.name": name, "metadata.namespace": ctx.namespace}
    policy = spec.get("restartPolicy", "Always")
    grace = spec.get("terminationGracePeriodSeconds")
    groups = tuple(str(g) for g in ([fs_gid] if fs_gid is not None else []) + list(
        pod_security.get("supplementalGroups") or []))

    def one(container: dict[str, Any], labels: dict[str, str]) -> ContainerSpec:
        security = {**pod_security, **(container.get("securityContext") or {})}
        lowered = _container(key, {**container, "securityContext": security},
                             {**base, **labels}, mounts, ctx, env_ctx)
        return lowered._replace(stop_timeout=int(grace) if grace is not None else None,
                                group_add=groups)

    # the supervisor never restarts them: the controller does, in the pod, as the
    # kubelet does (``kubelet.Kubelet``), after the pod's restartPolicy
    inits = tuple(one(c, {LABEL_ROLE: "init"}) for c in spec.get("initContainers") or [])
    apps = tuple(one(c, {LABEL_ROLE: "app", LABEL_RESTART: policy}) for c in containers)
    owned = tuple(m.source for m in mounts.values() if m.type == "volume")
    fs_group = FsGroup(int(fs_gid), owned, pod_security.get(
        "fsGroupChangePolicy") or "Always") if fs_gid is not None else None
    return PodPlan(key, infra, inits, apps, volumes, fs_group)


def pod_key(namespace: str, pod: str) -> str:
    """The name of a pod's containers (and its label): the pod's name, prefixed with
    its namespace outside ``default`` (namespaces keep names apart)."""
    return pod if namespace == "default" else f"{namespace}.{pod}"


def _container(pod: str, c: dict[str, Any], labels: dict[str, str],
               mounts: dict[str, MountSpec], ctx: Context,
               env_ctx: dict[str, str]) -> ContainerSpec:
    where = f"pod {pod}: container {c['name']}"
    command = c.get("command")
    args = c.get("args")
    security = c.get("securityContext") or {}
    limits = (c.get("resources") or {}).get("limits") or {}
    # a memory request is what the container keeps under pressure: its reservation, as
    # podman's kube play makes it (cpu requests, a scheduler's hint, change nothing)
    requests = (c.get("resources") or {}).get("requests") or {}
    user = None
    if "runAsUser" in security:
        user = str(security["runAsUser"])
        if "runAsGroup" in security:
            user += f":{security['runAsGroup']}"
    caps = security.get("capabilities") or {}
    healthcheck, probe_labels = _probes(c, where)
    labels = {**labels, **probe_labels, **_hooks(c, where)}
    if security.get("runAsNonRoot"):
        if user is not None and user.split(":")[0] == "0":
            raise InvalidArgument(f"{where}: container's runAsUser breaks non-root policy")
        labels = {**labels, LABEL_NONROOT: "true"}
    return ContainerSpec(
        image=c["image"], name=f"{pod}-{c['name']}",
        entrypoint=tuple(command) if command is not None else None,
        command=tuple(args) if args is not None else (() if command is not None else None),
        env=_env(c, ctx, env_ctx, where), working_dir=c.get("workingDir"), user=user,
        labels=labels, read_only=bool(security.get("readOnlyRootFilesystem")),
        restart=RestartPolicy("no"), memory=_memory(limits.get("memory"), where),
        memory_reservation=_memory(requests.get("memory"), where, "requests"),
        nano_cpus=_cpus(limits.get("cpu"), where),
        cap_add=tuple(caps.get("add") or ()), cap_drop=tuple(caps.get("drop") or ()),
        privileged=bool(security.get("privileged")),
        no_new_privileges=security.get("allowPrivilegeEscalation") is False,
        network_mode=f"container:{pod}", ipc_mode=f"container:{pod}",
        uts_mode=f"container:{pod}", healthcheck=healthcheck,
        mounts=_mounts(c, mounts, where), tty=bool(c.get("tty")),
        stdin_open=bool(c.get("stdin")))


def _ports(c: dict[str, Any]) -> list[PortSpec]:
    return [PortSpec(p.get("hostIP", ""), int(p["hostPort"]), int(p["containerPort"]),
                     p.get("protocol", "TCP").lower())
            for p in c.get("ports") or [] if p.get("hostPort")]


def _env(c: dict[str, Any], ctx: Context, env_ctx: dict[str, str],
         where: str) -> tuple[str, ...]:
    env: dict[str, str] = {}
    for source in c.get("envFrom") or []:
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                ref = f"{kind}/{source[key]['name']}"
                if ref not in ctx.config_data:
                    if source[key].get("optional"):
                        continue
                    raise InvalidArgument(f"{where}: envFrom: {ref} is not in the input")
                prefix = source.get("prefix", "")
                env.update({prefix + k: v for k, v in ctx.config_data[ref].items()})
    for item in c.get("env") or []:
        value = _env_value(item, ctx, env_ctx, where)
        if value is not None:
            env[item["name"]] = value
    return tuple(f"{k}={v}" for k, v in env.items())


def _env_value(item: dict[str, Any], ctx: Context, env_ctx: dict[str, str],
               where: str) -> str | None:
    if "valueFrom" not in item:
        return str(item.get("value", ""))
    source = item["valueFrom"]
    for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
        if key in source:
            ref = f"{kind}/{source[key]['name']}"
            data = ctx.config_data.get(ref)
            if data is None or source[key]["key"] not in data:
                if source[key].get("optional"):
                    return None
                raise InvalidArgument(f"{where}: env {item['name']}: {ref} key "
                                      f"{source[key]['key']!r} is not in the input")
            return data[source[key]["key"]]
    field = (source.get("fieldRef") or {}).get("fieldPath")
    if field in env_ctx:
        return env_ctx[field]
    raise InvalidArgument(f"{where}: env {item['name']}: unsupported valueFrom {source}")


def _volumes(pod: str, volumes: list[dict[str, Any]], ctx: Context,
             fs_group: int | None) -> tuple[dict[str, MountSpec], tuple[str, ...]]:
    """Volume name → a mount of it (target left empty), and the emptyDir volumes."""
    found: dict[str, MountSpec] = {}
    empty_dirs = []
    for volume in volumes:
        name = volume["name"]
        if "emptyDir" in volume:
            if (volume["emptyDir"] or {}).get("medium") == "Memory":
                owned = f"mode=2777,gid={fs_group}" if fs_group is not None else ""
                found[name] = MountSpec("tmpfs", "", "", options=owned)
            else:
                empty_dirs.append(f"{pod}-{name}")
                found[name] = MountSpec("volume", f"{pod}-{name}", "")
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            found[name] = MountSpec("volume", pod_key(ctx.namespace, claim), "")
        elif "hostPath" in volume:  # never given to fsGroup (as the kubelet)
            found[name] = MountSpec("bind", volume["hostPath"]["path"], "",
                                    create_host_path=volume["hostPath"].get("type") in (
                                        "DirectoryOrCreate",))
        else:
            kind, key = ("ConfigMap", "configMap") if "configMap" in volume else (
                "Secret", "secret")
            ref_name = volume[key].get("name") or volume[key].get("secretName")
            ref = f"{kind}/{ref_name}"
            if ref not in ctx.config_dirs:
                raise InvalidArgument(f"pod {pod}: volume {name}: {ref} is not in the input")
            found[name] = MountSpec("bind", str(config_dir(ctx.config_dirs[ref], fs_group)),
                                    "", readonly=True)
    return found, tuple(empty_dirs)


def config_dir(base: Path, fs_group: int | None) -> Path:
    """Where a ConfigMap's or Secret's files are for a pod: one copy per fsGroup, its
    files group-owned by it (``play.write_configs``)."""
    return base if fs_group is None else base.with_name(f"{base.name}.fsgroup-{fs_group}")


def _mounts(c: dict[str, Any], volumes: dict[str, MountSpec], where: str) -> tuple[MountSpec, ...]:
    mounts = []
    for item in c.get("volumeMounts") or []:
        if item["name"] not in volumes:
            raise InvalidArgument(f"{where}: volumeMounts: no volume named {item['name']!r}")
        if item.get("subPath"):
            raise InvalidArgument(f"{where}: volumeMounts.subPath is not supported")
        mount = volumes[item["name"]]
        mounts.append(mount._replace(target=item["mountPath"],
                                     readonly=mount.readonly or bool(item.get("readOnly"))))
    return tuple(mounts)


def _hooks(c: dict[str, Any], where: str) -> dict[str, str]:
    """postStart/preStop handlers (exec, httpGet, sleep) as labels, a named httpGet
    port resolved against the container's ports."""
    import json

    return {f"{LABEL_HOOK}{hook}": json.dumps(_resolved(handler, c, f"lifecycle.{hook}", where),
                                              sort_keys=True)
            for hook, handler in (c.get("lifecycle") or {}).items() if handler}


def _probes(c: dict[str, Any], where: str) -> tuple[Healthcheck | None, dict[str, str]]:
    """The container's healthcheck (run by its supervisor) and labels for the probes
    the controller runs.  One exec liveness or readiness probe (readiness first) is the
    healthcheck; every other probe is the controller's: httpGet, tcpSocket and grpc
    ones, a second exec one, and all of them while a startupProbe holds the others
    back (a healthcheck would not wait for it)."""
    import json

    from dockyard.kube.prober import LABEL

    probes = {kind: c[f"{kind}Probe"] for kind in ("startup", "readiness", "liveness")
              if c.get(f"{kind}Probe")}
    health = None if "startup" in probes else next(
        (k for k in ("readiness", "liveness") if "exec" in probes.get(k, {})), None)
    labels = {LABEL_PROBE: health} if health else {}
    for kind, probe in probes.items():
        if kind != health:
            labels[f"{LABEL}{kind}"] = json.dumps(
                _resolved(probe, c, f"{kind}Probe", where), sort_keys=True)
    return _probe(probes[health] if health else None), labels


def _resolved(action: dict[str, Any], c: dict[str, Any], what: str,
              where: str) -> dict[str, Any]:
    """A probe or handler with its httpGet/tcpSocket port named by a container port
    resolved to the number."""
    kind = "httpGet" if "httpGet" in action else "tcpSocket" if "tcpSocket" in action else ""
    if not kind:
        return action
    port = action[kind].get("port", 80)
    if not (isinstance(port, int) or str(port).isdigit()):
        named = [p["containerPort"] for p in c.get("ports") or [] if p.get("name") == port]
        if not named:
            raise InvalidArgument(f"{where}: {what}.{kind}.port: no container port named "
                                  f"{port!r}")
        port = named[0]
    return {**action, kind: {**action[kind], "port": int(port)}}


def _probe(probe: dict[str, Any] | None) -> Healthcheck | None:
    if not probe:
        return None
    period = float(probe.get("periodSeconds", 10))
    # every periodSeconds from the start, the initial delay too (Docker's 5 s default
    # start interval is not Kubernetes')
    return Healthcheck(test=("CMD", *probe["exec"]["command"]), interval=period,
                       timeout=float(probe.get("timeoutSeconds", 1)),
                       retries=int(probe.get("failureThreshold", 3)),
                       start_period=float(probe.get("initialDelaySeconds", 0)),
                       start_interval=period)


_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6,
           "G": 10**9, "T": 10**12, "": 1}


def _memory(value: Any, where: str, kind: str = "limits") -> int | None:
    if value is None:
        return None
    text = str(value)
    number = text.rstrip("KMGTik")
    try:
        return int(float(number) * _SUFFIX[text[len(number):]])
    except (KeyError, ValueError):
        raise InvalidArgument(f"{where}: resources.{kind}.memory: bad quantity "
                              f"{text!r}") from None


def _cpus(value: Any, where: str) -> int | None:
    if value is None:
        return None
    text = str(value)
    try:
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise InvalidArgument(f"{where}: resources.limits.cpu: bad quantity "
                              f"{text!r}") from None
    return int(cores * 1e9)
