"""Containers → Kubernetes YAML: a Deployment per container (and a Service for its
published ports), checked against the same schemas ``kube play`` uses."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from dockyard.errors import InternalError
from dockyard.kube.load import schema_error

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.engine.records import ContainerRecord
    from dockyard.engine.spec import ContainerSpec, Healthcheck


def generate(engine: Engine, refs: list[str], *, pin: bool = False) -> str:
    import yaml

    documents: list[dict[str, Any]] = []
    for ref in refs:
        record = engine.containers.get(ref)
        image = _image(engine, record) if pin else record.spec.image
        documents += objects_for(record.name, record.spec, image)
    for doc in documents:
        error = schema_error(doc)
        if error:  # a bug here, not the user's input
            raise InternalError(f"kube generate made an invalid {doc['kind']}: {error}")
    return yaml.safe_dump_all(documents, sort_keys=False)


def _image(engine: Engine, record: ContainerRecord) -> str:
    repo = re.sub(r":[^:/@]+$", "", record.spec.image.split("@")[0])
    return f"{repo}@{record.manifest_digest}"


def dns_name(name: str) -> str:
    """A container name as a Kubernetes object name (RFC 1123 label)."""
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return text[:63] or "app"


def objects_for(name: str, spec: ContainerSpec, image: str) -> list[dict[str, Any]]:
    app = dns_name(name)
    labels = {"app": app}
    container = _container(app, spec, image)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [container]}}}}
    if not spec.ports:
        return [deployment]
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "labels": labels},
        "spec": {"selector": labels, "ports": [
            {"name": f"{p.protocol}-{p.container_port}", "protocol": p.protocol.upper(),
             "port": p.host_port or p.container_port, "targetPort": p.container_port}
            for p in spec.ports]}}
    return [deployment, service]


def _container(name: str, spec: ContainerSpec, image: str) -> dict[str, Any]:
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
        container["ports"] = [{"containerPort": p.container_port,
                               "protocol": p.protocol.upper()} for p in spec.ports]
    limits = {}
    if spec.memory:
        limits["memory"] = str(spec.memory)
    if spec.nano_cpus:
        limits["cpu"] = f"{spec.nano_cpus // 1_000_000}m"
    if limits:
        container["resources"] = {"limits": limits}
    probe = _probe(spec.healthcheck)
    if probe:
        container["livenessProbe"] = probe
    security = _security(spec)
    if security:
        container["securityContext"] = security
    return container


def _probe(check: Healthcheck | None) -> dict[str, Any] | None:
    if check is None or not check.test or check.test[0] == "NONE":
        return None
    command = list(check.test[1:]) if check.test[0] == "CMD" else [
        "/bin/sh", "-c", " ".join(check.test[1:])]
    return {"exec": {"command": command}, "periodSeconds": max(1, int(check.interval)),
            "timeoutSeconds": max(1, int(check.timeout)), "failureThreshold": check.retries,
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
