"""``kube get``: the objects that are playing (each controller's desired state) with
a Kubernetes-shaped ``status`` read from their containers, as objects (for ``-o
yaml|json``) or as kubectl's table rows."""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidArgument, NotFound
from dockyard.kube import controller, play, rollout, status
from dockyard.kube.kubelet import read_statuses, terminated
from dockyard.kube.load import REPLICATED, KubeObject, matches
from dockyard.kube.lower import LABEL_OWNER, LABEL_POD, LABEL_ROLE
from dockyard.kube.prober import read_verdicts

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.engine.records import ContainerRecord

KINDS = {"deploy": "Deployment", "deployment": "Deployment", "deployments": "Deployment",
         "rs": "ReplicaSet", "replicaset": "ReplicaSet", "replicasets": "ReplicaSet",
         "ds": "DaemonSet", "daemonset": "DaemonSet", "daemonsets": "DaemonSet",
         "job": "Job", "jobs": "Job", "po": "Pod", "pod": "Pod", "pods": "Pod",
         "svc": "Service", "service": "Service", "services": "Service",
         "ep": "Endpoints", "endpoints": "Endpoints", "cm": "ConfigMap",
         "configmap": "ConfigMap", "configmaps": "ConfigMap", "secret": "Secret",
         "secrets": "Secret", "pvc": "PersistentVolumeClaim",
         "persistentvolumeclaim": "PersistentVolumeClaim", "ns": "Namespace",
         "namespace": "Namespace", "namespaces": "Namespace"}


def kind_of(word: str) -> str:
    kind = KINDS.get(word.lower())
    if kind is None:
        raise InvalidArgument(f'the server doesn\'t have a resource type "{word}"')
    return kind


def get(engine: Engine, word: str, name: str | None, namespace: str) -> list[dict[str, Any]]:
    """The objects of ``word`` (a kubectl resource name) in ``namespace``, with status."""
    kind = kind_of(word)
    played = [o for o in playing(engine) if kind == "Namespace" or o.namespace == namespace]
    records = engine.containers.list(all_containers=True)
    if kind == "Pod":
        found = pods(engine, played, records)
    elif kind == "Endpoints":
        found = [endpoints(engine, o, records) for o in played if o.kind == "Service"]
    else:
        found = [with_status(engine, o, records) for o in played if o.kind == kind]
    if name is not None:
        found = [o for o in found if o["metadata"]["name"] == name]
        if not found:
            plural = kind.lower() + ("" if kind == "Endpoints" else "s")
            raise NotFound(f'{plural} "{name}" not found')
    return found


def playing(engine: Engine) -> list[KubeObject]:
    found = []
    folder = controller.state_dir(engine)
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            found += controller.read_objects(path)
        except (OSError, ValueError, TypeError):
            continue  # one being written or removed
    return found


def with_status(engine: Engine, obj: KubeObject, records: list[ContainerRecord]) -> dict[
        str, Any]:
    doc = copy.deepcopy(obj.body)
    doc.setdefault("metadata", {}).setdefault("namespace", obj.namespace)
    pods = status.pods_of(records, obj.owner)
    if obj.kind in REPLICATED:
        doc["status"] = _replicated(engine, obj, pods)
    elif obj.kind == "Job":
        doc["status"] = _job(pods, obj)
    elif obj.kind == "Service":
        doc["spec"]["clusterIP"] = _cluster_ip(engine, obj)
        doc["status"] = {"loadBalancer": {}}
    elif obj.kind == "PersistentVolumeClaim":
        doc["status"] = {"phase": "Bound"}
    elif obj.kind == "Namespace":
        doc["status"] = {"phase": "Active"}
    return doc


def _replicated(engine: Engine, obj: KubeObject, pods: status.Pods) -> dict[str, Any]:
    current = rollout.template_hash(obj.body["spec"]["template"])
    total = len(pods)
    updated = sum(1 for m in pods.values() if _hash(m) == current)
    verdicts = read_verdicts(controller.state_dir(engine))
    ready = sum(1 for m in pods.values() if status.ready(engine, m, verdicts))
    want = play.replicas(obj)
    if obj.kind == "DaemonSet":
        return {"currentNumberScheduled": total, "desiredNumberScheduled": want,
                "numberMisscheduled": 0, "numberReady": ready, "numberAvailable": ready,
                "updatedNumberScheduled": updated, "observedGeneration": 1}
    found: dict[str, Any] = {"observedGeneration": 1, "replicas": total,
                             "readyReplicas": ready, "availableReplicas": ready}
    if obj.kind == "Deployment":
        found["updatedReplicas"] = updated
        if want > ready:
            found["unavailableReplicas"] = want - ready
        done = updated == want == ready == total
        found["conditions"] = [
            _condition("Available", ready >= want - _unavailable(obj, want),
                       "MinimumReplicasAvailable"),
            _condition("Progressing", True,
                       "NewReplicaSetAvailable" if done else "ReplicaSetUpdated")]
    return found


def _unavailable(obj: KubeObject, want: int) -> int:
    strategy = rollout.strategy_of(obj.kind, obj.body["spec"])
    return 0 if strategy["type"] != "RollingUpdate" else rollout.bounds(strategy, want)[1]


def _hash(members: list[ContainerRecord]) -> str:
    holder = status.infra(members)
    return holder.spec.labels.get(rollout.HASH_LABEL, "") if holder else ""


def _job(pods: status.Pods, obj: KubeObject) -> dict[str, Any]:
    counts = controller.job_counts(pods)
    completions, _, limit = controller.job_numbers(obj.body["spec"])
    found: dict[str, Any] = {key: value for key, value in counts.items() if value}
    if counts["succeeded"] >= completions:
        found["conditions"] = [_condition("Complete", True, "")]
    elif counts["failed"] > limit:
        found["conditions"] = [_condition("Failed", True, "BackoffLimitExceeded")]
    return found


def _condition(kind: str, true: bool, reason: str) -> dict[str, str]:
    found = {"type": kind, "status": "True" if true else "False"}
    if reason:
        found["reason"] = reason
    return found


def _cluster_ip(engine: Engine, obj: KubeObject) -> str:
    from dockyard.errors import ContainerNotFound

    try:
        holder = engine.containers.get(play.service_container(obj))
    except ContainerNotFound:
        return ""
    addresses = engine.networks.endpoints(network=play.network_name(obj.namespace),
                                          container_id=holder.id)
    return addresses[0].address.split("/")[0] if addresses else ""


def pods(engine: Engine, played: list[KubeObject],
         records: list[ContainerRecord]) -> list[dict[str, Any]]:
    owners = {o.owner: o for o in played}
    found = []
    for pod, members in sorted(status.pods_of(records).items()):
        holder = status.infra(members)
        if holder is None or holder.spec.labels.get(LABEL_OWNER) not in owners:
            continue
        found.append(_pod(engine, pod, owners[holder.spec.labels[LABEL_OWNER]], holder,
                          members))
    return found


def _pod(engine: Engine, pod: str, owner: KubeObject, holder: ContainerRecord,
         members: list[ContainerRecord]) -> dict[str, Any]:
    labels = {k: v for k, v in holder.spec.labels.items() if not k.startswith("io.dockyard.")}
    spec = owner.body["spec"] if owner.kind == "Pod" else owner.body["spec"]["template"]["spec"]
    addresses = engine.networks.endpoints(network=play.network_name(owner.namespace),
                                          container_id=holder.id)
    verdicts = read_verdicts(controller.state_dir(engine))
    ready = status.ready(engine, members, verdicts)
    name = holder.spec.labels[LABEL_POD].removeprefix(f"{owner.namespace}.")
    meta: dict[str, Any] = {"name": name, "namespace": owner.namespace,
                            "labels": labels, "creationTimestamp": holder.created}
    if owner.kind != "Pod":
        meta["ownerReferences"] = [{"apiVersion": owner.body["apiVersion"],
                                    "kind": owner.kind, "name": owner.name,
                                    "uid": owner.owner, "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(spec),
            "status": {
                "phase": status.phase(engine, members),
                "podIP": addresses[0].address.split("/")[0] if addresses else "",
                "startTime": holder.started_at,
                "conditions": [_condition("Ready", ready, "")],
                "containerStatuses": _containers(engine, holder, spec, members, verdicts)}}


def _containers(engine: Engine, holder: ContainerRecord, spec: dict[str, Any],
                members: list[ContainerRecord], verdicts: dict[str, bool]) -> list[dict[
                    str, Any]]:
    """A status for each container of the pod's spec, as the kubelet gives them: one
    not made yet waits (PodInitializing while init containers run; ContainerCreating,
    also between a restarted container's old one and its new one)."""
    known = read_statuses(controller.state_dir(engine))
    made = {r.name: r for r in status.apps(members)}
    reason = "ContainerCreating" if made or not any(
        r.spec.labels.get(LABEL_ROLE) == "init" for r in members) else "PodInitializing"
    found = []
    for container in spec["containers"]:
        name = f"{holder.name}-{container['name']}"
        if name in made:
            found.append(_container(engine, made[name], verdicts, known.get(name) or {}))
        else:
            found.append({"name": container["name"], "image": container["image"],
                          "ready": False, "restartCount": int(
                              (known.get(name) or {}).get("restartCount") or 0),
                          "state": {"waiting": {"reason": reason}}})
    return found


def _container(engine: Engine, record: ContainerRecord, verdicts: dict[str, bool],
               known: dict[str, Any]) -> dict[str, Any]:
    """A containerStatus; ``known``: what the controller's kubelet part says of it
    (restartCount, lastState, a back-off it waits out)."""
    if record.state == "running":
        state: dict[str, Any] = {"running": {"startedAt": record.started_at}}
    elif "waiting" in known and record.state == "exited":
        state = {"waiting": known["waiting"]}
    elif record.state == "exited":
        state = {"terminated": terminated(record)}
    else:
        state = {"waiting": {"reason": "ContainerCreating" if record.state == "created" else
                             record.state.capitalize()}}
    probe = record.spec.labels.get("io.dockyard.kube.probe")
    ready = record.state == "running" and (probe != "readiness" or status.health(
        engine, record) == "healthy") and verdicts.get(f"{record.id}/readiness", True)
    pod = record.spec.labels[LABEL_POD]
    found = {"name": record.name[len(pod) + 1:], "image": record.spec.image,
             "imageID": record.image_id, "ready": ready,
             "restartCount": int(known.get("restartCount") or 0), "state": state}
    if known.get("lastState"):
        found["lastState"] = known["lastState"]
    return found


def endpoints(engine: Engine, service: KubeObject,
              records: list[ContainerRecord]) -> dict[str, Any]:
    selector = service.body["spec"]["selector"]
    addresses = []
    for pod in pods(engine, [o for o in playing(engine) if o.namespace == service.namespace],
                    records):
        if matches(selector, pod["metadata"]["labels"]) and pod["status"]["conditions"][0][
                "status"] == "True" and pod["status"]["podIP"]:
            addresses.append({"ip": pod["status"]["podIP"],
                              "targetRef": {"kind": "Pod", "name": pod["metadata"]["name"]}})
    meta = {"name": service.name, "namespace": service.namespace}
    subsets = [{"addresses": addresses}] if addresses else []
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta, "subsets": subsets}


def render(objects: list[dict[str, Any]], single: bool, output: str) -> str:
    import yaml

    doc: Any = objects[0] if single else {"apiVersion": "v1", "kind": "List",
                                          "items": objects}
    if output == "json":
        return json.dumps(doc, indent=4) + "\n"
    return str(yaml.safe_dump(doc, sort_keys=False))


def table(kind: str, objects: list[dict[str, Any]]) -> list[list[str]]:
    """kubectl's default columns."""
    rows: list[list[str]] = []
    for doc in objects:
        name, state = doc["metadata"]["name"], doc.get("status") or {}
        if kind in ("Deployment", "ReplicaSet"):
            want = doc["spec"].get("replicas", 1)
            rows.append([name, f"{state.get('readyReplicas', 0)}/{want}",
                         str(state.get("updatedReplicas", state.get("replicas", 0))),
                         str(state.get("availableReplicas", 0))])
        elif kind == "DaemonSet":
            rows.append([name, "1", str(state["currentNumberScheduled"]),
                         str(state["numberReady"])])
        elif kind == "Job":
            completions = controller.job_numbers(doc["spec"])[0]
            rows.append([name, f"{state.get('succeeded', 0)}/{completions}",
                         (state.get("conditions") or [{"type": "Running"}])[0]["type"]])
        elif kind == "Pod":
            containers = state["containerStatuses"]
            ready = sum(1 for c in containers if c["ready"])
            waiting = [c["state"]["waiting"]["reason"] for c in containers
                       if "waiting" in c["state"]]  # kubectl's STATUS shows the reason
            rows.append([name, f"{ready}/{len(containers)}", (waiting or [state["phase"]])[0],
                         str(sum(c["restartCount"] for c in containers)), state["podIP"]])
        elif kind == "Service":
            ports = ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}"
                             for p in doc["spec"].get("ports") or [])
            rows.append([name, doc["spec"].get("type", "ClusterIP"),
                         doc["spec"]["clusterIP"] or "<none>", ports])
        elif kind == "Endpoints":
            ips = [a["ip"] for s in doc["subsets"] for a in s["addresses"]]
            rows.append([name, ",".join(sorted(ips)) or "<none>"])
        else:
            rows.append([name])
    return rows


HEADERS = {"Deployment": ["NAME", "READY", "UP-TO-DATE", "AVAILABLE"],
           "ReplicaSet": ["NAME", "READY", "CURRENT", "AVAILABLE"],
           "DaemonSet": ["NAME", "DESIRED", "CURRENT", "READY"],
           "Job": ["NAME", "COMPLETIONS", "STATUS"],
           "Pod": ["NAME", "READY", "STATUS", "RESTARTS", "IP"],
           "Service": ["NAME", "TYPE", "CLUSTER-IP", "PORT(S)"],
           "Endpoints": ["NAME", "ENDPOINTS"]}
