"""kube generate: a container's spec becomes a Deployment (+ Service) that passes the
Kubernetes schemas and that kube play's lowering turns back into the same container."""

from __future__ import annotations

from dockyard.engine.spec import ContainerSpec, Healthcheck, PortSpec
from dockyard.kube.generate import dns_name, objects_for
from dockyard.kube.load import KubeObject, schema_error, unsupported
from dockyard.kube.lower import Context, lower_pod

SPEC = ContainerSpec(
    image="box:1", name="web_1", entrypoint=("sh", "-c"), command=("httpd -f",),
    env=("A=1", "B=x=y"), memory=64 * 2**20, nano_cpus=250_000_000,
    ports=(PortSpec("127.0.0.1", 8080, 80),),
    healthcheck=Healthcheck(("CMD-SHELL", "wget -q localhost"), interval=5, timeout=2, retries=4),
    user="1000", read_only=True)


def test_generated_objects_are_valid_and_supported() -> None:
    docs = objects_for("web_1", SPEC, "box@sha256:" + "a" * 64)
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    for doc in docs:
        assert schema_error(doc) is None
        obj = KubeObject(doc["kind"], doc["metadata"]["name"], "default", doc, "gen")
        assert unsupported(obj) == []
    assert docs[1]["spec"]["ports"][0] == {"name": "tcp-80", "protocol": "TCP", "port": 8080,
                                           "targetPort": 80}


def test_round_trip_through_lowering() -> None:
    docs = objects_for("web_1", SPEC, "box:1")
    template = docs[0]["spec"]["template"]
    plan = lower_pod("web-1-abcde", "o", template["metadata"], template["spec"],
                     Context("kube-default", "default", {}, {}))
    app = plan.apps[0]
    for field in ("image", "entrypoint", "command", "env", "memory", "nano_cpus", "user",
                  "read_only"):
        assert getattr(app, field) == getattr(SPEC, field), field
    assert app.healthcheck is not None
    assert app.healthcheck.test == ("CMD", "/bin/sh", "-c", "wget -q localhost")


def test_names_become_dns_labels() -> None:
    assert dns_name("Web_1.x") == "web-1-x"
