"""kube generate: a container's spec (or a compose project's) becomes a workload, a
Service, ConfigMaps/Secrets, PVCs and initContainers that pass the Kubernetes schemas
and that kube play's lowering turns back into the same container."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.engine.spec import ContainerSpec, Healthcheck, MountSpec, PortSpec
from dockyard.errors import InvalidArgument
from dockyard.kube.generate import App, FileSource, dns_name, documents, render
from dockyard.kube.load import KubeObject, load_text, schema_error, unsupported
from dockyard.kube.lower import Context, lower_pod

SPEC = ContainerSpec(
    image="box:1", name="web_1", entrypoint=("sh", "-c"), command=("httpd -f",),
    env=("A=1", "B=x=y"), memory=64 * 2**20, memory_reservation=16 * 2**20,
    nano_cpus=250_000_000,
    ports=(PortSpec("127.0.0.1", 8080, 80),),
    healthcheck=Healthcheck(("CMD-SHELL", "wget -q localhost"), interval=5, timeout=2, retries=4),
    user="1000", read_only=True, mounts=(MountSpec("volume", "proj_data", "/data"),))


def _valid(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        assert schema_error(doc) is None, doc
        obj = KubeObject(doc["kind"], doc["metadata"]["name"], "default", doc, "gen")
        assert unsupported(obj) == [], doc


def test_generated_objects_are_valid_and_supported() -> None:
    docs, warnings = documents([App("web-1", SPEC)])
    assert warnings == []
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Deployment", "Service"]
    _valid(docs)
    # peers reach it on its container port, as on a compose network
    assert docs[2]["spec"]["ports"][0] == {"name": "tcp-80", "protocol": "TCP", "port": 80,
                                           "targetPort": 80}
    container = docs[1]["spec"]["template"]["spec"]["containers"][0]
    assert "readinessProbe" in container  # behind a Service: health gates its traffic
    assert container["volumeMounts"] == [{"name": "proj-data", "mountPath": "/data"}]
    assert docs[0]["metadata"]["name"] == "proj-data"


@pytest.mark.parametrize("kind", ["Pod", "Job", "DaemonSet"])
def test_other_workload_kinds(kind: str) -> None:
    docs, _ = documents([App("web-1", SPEC._replace(ports=()))], kind=kind)
    assert docs[-1]["kind"] == kind
    _valid(docs)
    with pytest.raises(InvalidArgument, match="--kind 'CronJob'"):
        documents([App("web-1", SPEC)], kind="CronJob")


def test_env_files_configs_secrets_and_depends_on() -> None:
    db = App("db", ContainerSpec(image="box:1", ports=(PortSpec("", 0, 5432),)))
    web = App("web", SPEC._replace(ports=(), mounts=(), env=("A=1", "MODE=fast")),
              depends_on=("db", "cache"), env_file={"MODE": "fast"},
              files=(FileSource("ConfigMap", "conf", "/etc/app/app.conf"),
                     FileSource("Secret", "pw", "/run/secrets/token")))
    cache = App("cache", ContainerSpec(image="box:1"))
    docs, warnings = documents([db, cache, web])
    _valid(docs)
    assert warnings == ["web: depends on cache, which publishes no port: no Service to "
                        "wait on (not waited for)"]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("ConfigMap", "web-env"), ("ConfigMap", "web-config-0"),
            ("Secret", "web-secret-1"), ("Service", "db")} <= kinds
    pod = next(d for d in docs if d["metadata"]["name"] == "web" and d["kind"] == "Deployment")[
        "spec"]["template"]["spec"]
    (wait,) = pod["initContainers"]
    assert wait["name"] == "wait-for-db" and "nc -w 2 db 5432" in wait["command"][2]
    container = pod["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": "web-env"}}]
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/etc/app", "/run/secrets"}
    # and kube play takes all of it
    problems: list[str] = []
    load_text(render(docs), "gen.yaml", problems)
    assert problems == []


def test_round_trip_through_lowering() -> None:
    docs, _ = documents([App("web-1", SPEC._replace(mounts=()))])
    template = docs[0]["spec"]["template"]
    plan = lower_pod("web-1-abcde", "o", template["metadata"], template["spec"],
                     Context("kube-default", "default", {}, {}))
    app = plan.apps[0]
    for field in ("image", "entrypoint", "command", "env", "memory", "memory_reservation",
                  "nano_cpus", "user",
                  "read_only"):
        assert getattr(app, field) == getattr(SPEC, field), field
    assert app.healthcheck is not None
    assert app.healthcheck.test == ("CMD", "/bin/sh", "-c", "wget -q localhost")


def test_names_become_dns_labels() -> None:
    assert dns_name("Web_1.x") == "web-1-x"
    assert dns_name("__") == "app"
