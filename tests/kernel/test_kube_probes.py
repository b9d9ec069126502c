"""`dockyard kube` probes beyond one healthcheck: an exec startupProbe holding an exec
readinessProbe and an exec livenessProbe of the same container back, the two then
each on its own (one as the healthcheck, one run by the controller, without a
startupProbe), and grpc probes answered by gRPC's own health server inside the
pod's network namespace: readiness gating the Service's endpoints, liveness
restarting the container in its pod.

Traffic goes only to the project bridge these tests create."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockyard.testing.cli import Dockyard
from dockyard.testing.poll import until
from tests.kernel.kube_support import deployment, kube_dy  # noqa: F401 (the `dy` fixture)
from tests.kernel.test_kube import _address, _copy, _http, _nothing_left, _pods
from tests.kernel.test_kube_kinds import _get, _restarts

pytestmark = pytest.mark.root


EXEC = deployment("NAME", """\
      - name: main
        image: box:1
        command: [sh, -c, "mkdir -p /www && echo NAME > /www/index.html
                  && touch /tmp/ready STARTED && httpd -p 8080 -h /www && exec sleep 300"]
        ports: [{containerPort: 8080}]
        readinessProbe:
          exec: {command: [test, -f, /tmp/ready]}
          periodSeconds: 1
          timeoutSeconds: 10
        livenessProbe:
          exec: {command: [sh, -c, "test -f /tmp/started && test ! -f /tmp/dead"]}
          periodSeconds: 1
          timeoutSeconds: 10
          failureThreshold: 1
""")
STARTUP = """\
        startupProbe:
          exec: {command: [test, -f, /tmp/started]}
          periodSeconds: 1
          timeoutSeconds: 10
          failureThreshold: 120
"""


def _log(dy: Dockyard) -> str:
    return "".join(p.read_text() for p in (dy.root / "kube" / "controllers").glob("*.log"))


def _ready(dy: Dockyard, name: str) -> int:
    return int(_get(dy, "deploy", name)["status"].get("readyReplicas") or 0)


def _readiness_then_liveness(dy: Dockyard, name: str, pod: str) -> None:
    """Readiness failing takes the pod out of the Service and keeps it; liveness
    failing restarts its container in it (a new container: /tmp/dead is gone)."""
    service = _address(dy, f"svc-default-{name}")
    assert until(f"{name} behind its Service", lambda: _http(service, 80)) == name
    dy("exec", f"{pod}-main", "rm", "/tmp/ready")
    until(f"{name} out of its Service", lambda: _http(service, 80) is None)
    assert _ready(dy, name) == 0 and _pods(dy, f"default.Deployment.{name}") == [pod]
    dy("exec", f"{pod}-main", "touch", "/tmp/ready")
    assert until(f"{name} back behind its Service", lambda: _http(service, 80)) == name
    dy("exec", f"{pod}-main", "touch", "/tmp/dead")
    until(f"{name}'s container restarted", lambda: _restarts(dy, pod) == 1, timeout=30)
    assert f"pod {pod}: container main failed liveness probe, will be restarted" in _log(dy)
    if name == "gated":  # its startup probe waits for this file again
        until("the new container", lambda: dy("exec", f"{pod}-main", "touch", "/tmp/started",
                                              check=False).returncode == 0)
    assert until(f"{name} behind its Service again", lambda: _http(service, 80)) == name
    assert _pods(dy, f"default.Deployment.{name}") == [pod] and _restarts(dy, pod) == 1


def test_exec_startup_readiness_and_liveness_probes_of_one_container(dy: Dockyard) -> None:
    gated = EXEC.replace("NAME", "gated").replace(" STARTED", "").replace(
        "        readinessProbe:\n", STARTUP + "        readinessProbe:\n", 1)
    pair = EXEC.replace("NAME", "pair").replace("STARTED", "/tmp/started")
    path = _copy(dy, "exec.yaml", gated + "---\n" + pair)
    dy("kube", "play", "-d", str(path))
    (gated_pod,) = _pods(dy, "default.Deployment.gated")
    (pair_pod,) = _pods(dy, "default.Deployment.pair")
    # pair: readiness is its healthcheck, liveness the controller's
    labels = dy("container", "inspect", "--format", "{{json .Config.Labels}}",
                f"{pair_pod}-main").stdout
    assert '"io.dockyard.kube.probe":"readiness"' in labels.replace(" ", "")
    assert "io.dockyard.kube.netprobe.liveness" in labels
    # gated: /tmp/ready is there from the start, yet not ready before its startupProbe
    # passes; and its liveness probe, which fails until then, waits too
    until("pair ready", lambda: _ready(dy, "pair") == 1, timeout=30)
    time.sleep(2)  # a few periods of gated's probes
    assert _ready(dy, "gated") == 0
    assert _http(_address(dy, "svc-default-gated"), 80) is None
    assert _pods(dy, "default.Deployment.gated") == [gated_pod]
    dy("exec", f"{gated_pod}-main", "touch", "/tmp/started")
    until("gated ready", lambda: _ready(dy, "gated") == 1, timeout=30)
    for name, pod in (("gated", gated_pod), ("pair", pair_pod)):
        _readiness_then_liveness(dy, name, pod)
    dy("kube", "down", str(path))
    _nothing_left(dy)


GRPC = deployment("rpc", """\
      - name: main
        image: box:1
        command: [sh, -c, "mkdir -p /www && echo rpc > /www/index.html
                  && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080}]
        startupProbe:
          grpc: {port: 50051}
          periodSeconds: 1
          failureThreshold: 120
        readinessProbe:
          grpc: {port: 50051, service: ready}
          periodSeconds: 1
        livenessProbe:
          grpc: {port: 50051, service: live}
          periodSeconds: 1
          failureThreshold: 2
""")


class HealthServer:
    """gRPC's health server in a pod's network namespace, its statuses set by line."""

    def __init__(self, pid: int, port: int) -> None:
        script = Path(__file__).with_name("grpc_health_server.py")
        self.process = subprocess.Popen(
            ["nsenter", "-t", str(pid), "-n", sys.executable, str(script), str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline() == (
            "listening\n")

    def set(self, service: str, status: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{service} {status}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "set\n"

    def close(self) -> None:
        self.process.kill()
        self.process.communicate()


def test_grpc_probes_against_grpc_health_server(dy: Dockyard) -> None:
    path = _copy(dy, "rpc.yaml", GRPC)
    dy("kube", "play", "-d", str(path))
    (pod,) = _pods(dy, "default.Deployment.rpc")
    service = _address(dy, "svc-default-rpc")
    pid = int(dy("inspect", "--format", "{{.State.Pid}}", pod).stdout)
    time.sleep(2)  # nothing answers on 50051 yet: the startup probe fails, and waits
    assert _pods(dy, "default.Deployment.rpc") == [pod] and _http(service, 80) is None
    server = HealthServer(pid, 50051)
    try:
        # the server as a whole is SERVING: started; "ready" unknown to it: not ready
        server.set("live", "SERVING")
        time.sleep(2)
        assert _http(service, 80) is None and _ready(dy, "rpc") == 0
        server.set("ready", "SERVING")
        assert until("rpc behind its Service", lambda: _http(service, 80)) == "rpc"
        server.set("ready", "NOT_SERVING")
        until("rpc out of its Service", lambda: _http(service, 80) is None)
        assert _pods(dy, "default.Deployment.rpc") == [pod]  # not ready, still alive
        server.set("live", "NOT_SERVING")
        until("rpc's container restarted", lambda: _restarts(dy, pod) >= 1, timeout=30)
        assert f"pod {pod}: container main failed liveness probe, will be restarted" in (
            _log(dy))
        assert _pods(dy, "default.Deployment.rpc") == [pod]  # the server's netns kept
    finally:
        server.close()
    dy("kube", "down", str(path))
    _nothing_left(dy)
