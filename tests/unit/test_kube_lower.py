"""Pod templates lowered to ContainerSpecs: the infra holds the namespaces, the
containers join them; env, envFrom, limits, securityContext, volumes, ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dockyard.engine.spec import MountSpec, PortSpec
from dockyard.errors import InvalidArgument
from dockyard.kube.lower import LABEL_RESTART, Context, config_data, lower_pod

CTX = Context("kube-default", "default",
              {"ConfigMap/cfg": {"MODE": "fast", "LEVEL": "3"}, "Secret/pw": {"PASS": "s3"}},
              {"ConfigMap/cfg": Path("/k/cfg"), "Secret/pw": Path("/k/pw")})


def _pod(**container: Any) -> dict[str, Any]:
    return {"containers": [{"name": "web", "image": "box:1", **container}]}


def test_containers_join_the_infra_namespaces() -> None:
    plan = lower_pod("p1", "default.Pod.p1", {"labels": {"app": "a"}},
                     _pod(ports=[{"containerPort": 80, "hostPort": 8080}]), CTX)
    assert plan.infra.name == "p1" and plan.infra.network_mode == "kube-default"
    assert plan.infra.labels["app"] == "a" and plan.infra.hostname == "p1"
    assert plan.infra.ports == (PortSpec("", 8080, 80, "tcp"),)
    (app,) = plan.apps
    assert app.name == "p1-web"
    assert (app.network_mode, app.ipc_mode, app.uts_mode) == ("container:p1",) * 3
    # the controller restarts it in its pod (as the kubelet), never its supervisor
    assert app.restart.name == "no" and app.labels[LABEL_RESTART] == "Always"
    assert app.ports == ()


def test_command_args_env_and_config_sources() -> None:
    plan = lower_pod("p", "o", {}, _pod(
        command=["sh", "-c"], args=["echo hi"],
        env=[{"name": "A", "value": "1"},
             {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "P", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "PASS"}}}],
        envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "C_"}]), CTX)
    app = plan.apps[0]
    assert app.entrypoint == ("sh", "-c") and app.command == ("echo hi",)
    assert set(app.env) == {"C_MODE=fast", "C_LEVEL=3", "A=1", "POD=p", "P=s3"}


def test_a_missing_config_map_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="ConfigMap/nope"):
        lower_pod("p", "o", {}, _pod(envFrom=[{"configMapRef": {"name": "nope"}}]), CTX)


def test_limits_and_security_context() -> None:
    plan = lower_pod("p", "o", {}, _pod(
        resources={"limits": {"memory": "64Mi", "cpu": "500m"},
                   "requests": {"memory": "16Mi", "cpu": "100m"}},
        securityContext={"runAsUser": 1000, "runAsGroup": 10, "readOnlyRootFilesystem": True,
                         "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                         "allowPrivilegeEscalation": False}), CTX)
    app = plan.apps[0]
    assert app.memory == 64 * 2**20 and app.nano_cpus == 500_000_000
    assert app.memory_reservation == 16 * 2**20  # a memory request, as podman's
    assert app.user == "1000:10" and app.read_only and app.no_new_privileges
    assert app.cap_drop == ("ALL",) and app.cap_add == ("NET_BIND_SERVICE",)


def test_volumes_and_init_containers() -> None:
    spec = _pod(volumeMounts=[{"name": "cache", "mountPath": "/cache"},
                              {"name": "data", "mountPath": "/data"},
                              {"name": "conf", "mountPath": "/etc/app"}])
    spec["volumes"] = [{"name": "cache", "emptyDir": {}},
                       {"name": "data", "persistentVolumeClaim": {"claimName": "claim"}},
                       {"name": "conf", "configMap": {"name": "cfg"}}]
    spec["initContainers"] = [{"name": "one", "image": "box:1"},
                              {"name": "two", "image": "box:1"}]
    spec["restartPolicy"] = "Never"
    plan = lower_pod("p", "o", {}, spec, CTX)
    assert plan.volumes == ("p-cache",)
    assert plan.apps[0].mounts == (MountSpec("volume", "p-cache", "/cache"),
                                   MountSpec("volume", "claim", "/data"),
                                   MountSpec("bind", "/k/cfg", "/etc/app", readonly=True))
    assert [s.name for s in plan.inits] == ["p-one", "p-two"]
    assert plan.apps[0].restart.name == "no" and plan.apps[0].labels[LABEL_RESTART] == "Never"


def test_exec_liveness_probe_becomes_a_healthcheck() -> None:
    plan = lower_pod("p", "o", {}, _pod(livenessProbe={
        "exec": {"command": ["test", "-f", "/ok"]}, "periodSeconds": 5, "failureThreshold": 2}),
        CTX)
    check = plan.apps[0].healthcheck
    assert check is not None
    assert check.test == ("CMD", "test", "-f", "/ok") and check.interval == 5
    assert check.retries == 2


def test_bad_quantities_and_secret_data() -> None:
    with pytest.raises(InvalidArgument, match="resources.limits.memory"):
        lower_pod("p", "o", {}, _pod(resources={"limits": {"memory": "lots"}}), CTX)
    with pytest.raises(InvalidArgument, match="resources.requests.memory"):
        lower_pod("p", "o", {}, _pod(resources={"requests": {"memory": "lots"}}), CTX)
    assert config_data("Secret", {"metadata": {"name": "s"}, "data": {"k": "aGk="}}) == {
        "k": "hi"}
    with pytest.raises(InvalidArgument, match="Secret/s: data.k"):
        config_data("Secret", {"metadata": {"name": "s"}, "data": {"k": "!!"}})


def test_pod_security_defaults_and_grace_period() -> None:
    spec = _pod(securityContext={"runAsUser": 7})
    spec["containers"].append({"name": "b", "image": "box:1"})
    spec["securityContext"] = {"runAsUser": 1000, "runAsGroup": 5}
    spec["terminationGracePeriodSeconds"] = 3
    plan = lower_pod("p", "o", {}, spec, CTX)
    assert [a.user for a in plan.apps] == ["7:5", "1000:5"]
    assert {a.stop_timeout for a in plan.apps} == {3}


def test_a_readiness_probe_is_the_healthcheck_and_says_so() -> None:
    plan = lower_pod("p", "o", {}, _pod(readinessProbe={
        "exec": {"command": ["test", "-f", "/ready"]}, "periodSeconds": 1}), CTX)
    app = plan.apps[0]
    assert app.labels["io.dockyard.kube.probe"] == "readiness"
    assert app.healthcheck is not None and app.healthcheck.test[1:] == ("test", "-f", "/ready")
    plain = lower_pod("p", "o", {}, _pod(), CTX).apps[0]
    assert "io.dockyard.kube.probe" not in plain.labels and plain.healthcheck is None


def test_network_probes_become_labels_the_controller_runs() -> None:
    import json

    from dockyard.kube.prober import probes_of

    plan = lower_pod("p", "o", {}, _pod(
        ports=[{"name": "http", "containerPort": 8080}],
        readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2},
        livenessProbe={"exec": {"command": ["true"]}}), CTX)
    (app,) = plan.apps
    probes = probes_of(app.labels)
    assert probes == {"readiness": {"httpGet": {"path": "/ready", "port": 8080},
                                    "periodSeconds": 2}}
    assert app.healthcheck is not None and app.healthcheck.test == ("CMD", "true")
    assert json.loads(json.dumps(probes))  # plain data, as the labels carry it
    with pytest.raises(InvalidArgument, match="no container port named 'web'"):
        lower_pod("p", "o", {}, _pod(livenessProbe={"tcpSocket": {"port": "web"}}), CTX)


def test_the_healthcheck_is_one_exec_probe_and_the_controller_runs_the_rest() -> None:
    from dockyard.kube.prober import probes_of

    ready = {"exec": {"command": ["test", "-f", "/ready"]}, "periodSeconds": 1}
    live = {"exec": {"command": ["true"]}, "failureThreshold": 1}
    (app,) = lower_pod("p", "o", {}, _pod(readinessProbe=ready, livenessProbe=live), CTX).apps
    assert app.labels["io.dockyard.kube.probe"] == "readiness"
    assert app.healthcheck is not None and app.healthcheck.test == ("CMD", "test", "-f",
                                                                    "/ready")
    assert probes_of(app.labels) == {"liveness": live}
    # a startupProbe holds every other back: all of them are the controller's
    start = {"exec": {"command": ["test", "-f", "/started"]}}
    grpc = {"grpc": {"port": 50051, "service": "s"}}
    (gated,) = lower_pod("p", "o", {}, _pod(startupProbe=start, readinessProbe=grpc,
                                            livenessProbe=live), CTX).apps
    assert gated.healthcheck is None and "io.dockyard.kube.probe" not in gated.labels
    assert probes_of(gated.labels) == {"startup": start, "readiness": grpc, "liveness": live}


def test_lifecycle_handlers_become_labels_with_their_ports_resolved() -> None:
    import json

    (app,) = lower_pod("p", "o", {}, _pod(
        ports=[{"name": "admin", "containerPort": 9000}],
        lifecycle={"postStart": {"httpGet": {"path": "/up", "port": "admin"}},
                   "preStop": {"sleep": {"seconds": 2}}}), CTX).apps
    hooks = {k.rsplit(".", 1)[1]: json.loads(v) for k, v in app.labels.items()
             if k.startswith("io.dockyard.kube.lifecycle.")}
    assert hooks == {"postStart": {"httpGet": {"path": "/up", "port": 9000}},
                     "preStop": {"sleep": {"seconds": 2}}}
    with pytest.raises(InvalidArgument, match=r"lifecycle.preStop.httpGet.port: no container "
                                              "port named 'web'"):
        lower_pod("p", "o", {}, _pod(lifecycle={"preStop": {"httpGet": {"port": "web"}}}), CTX)


def test_fs_group_reaches_the_volumes_and_the_groups() -> None:
    from dockyard.kube.lower import FsGroup

    spec = _pod(volumeMounts=[{"name": n, "mountPath": f"/{n}"}
                              for n in ("d", "c", "m", "h", "cfg")])
    spec["volumes"] = [{"name": "d", "emptyDir": {}},
                       {"name": "c", "persistentVolumeClaim": {"claimName": "claim"}},
                       {"name": "m", "emptyDir": {"medium": "Memory"}},
                       {"name": "h", "hostPath": {"path": "/srv"}},
                       {"name": "cfg", "configMap": {"name": "cfg"}}]
    spec["securityContext"] = {"fsGroup": 2000, "supplementalGroups": [3000],
                               "fsGroupChangePolicy": "OnRootMismatch"}
    plan = lower_pod("p", "o", {}, spec, CTX)
    assert plan.fs_group == FsGroup(2000, ("p-d", "claim"), "OnRootMismatch")
    (app,) = plan.apps
    assert app.group_add == ("2000", "3000")
    sources = {m.target: (m.source, m.options) for m in app.mounts}
    assert sources["/m"] == ("", "mode=2777,gid=2000")
    assert sources["/h"] == ("/srv", "")  # a hostPath is never the group's
    assert sources["/cfg"] == ("/k/cfg.fsgroup-2000", "")  # the group's copy
    plain = lower_pod("p", "o", {}, {**spec, "securityContext": {}}, CTX)
    assert plain.fs_group is None and plain.apps[0].group_add == ()
    assert {m.source for m in plain.apps[0].mounts} >= {"/k/cfg"}
