"""`dockyard kube` as the kubelet runs a pod: a container that exits is restarted in
its pod (same pod, same address, the other container untouched) with the kubelet's
crash-loop back-off and a restartCount; the controller's probes each on their own
clock (a probe that hangs holds no other pod's probe back); a pod's containers ended
together within one grace period.

Traffic goes only to the project bridge these tests create."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.cli import Dockyard
from dockyard.testing.poll import until
from tests.kernel.kube_support import deployment, kube_dy  # noqa: F401 (the `dy` fixture)
from tests.kernel.test_kube import _address, _copy, _http, _nothing_left, _pods
from tests.kernel.test_kube_kinds import _get
from tests.kernel.test_kube_probes import _log

pytestmark = pytest.mark.root


def _status(dy: Dockyard, pod: str, container: str) -> dict[str, Any]:
    (found,) = [c for c in _get(dy, "pod", pod)["status"]["containerStatuses"]
                if c["name"] == container]
    return dict(found)


def _backing_off(dy: Dockyard, pod: str, container: str) -> dict[str, Any] | None:
    """The container's status while it waits out a crash-loop back-off."""
    found = _status(dy, pod, container)
    waiting = found["state"].get("waiting") or {}
    return found if waiting.get("reason") == "CrashLoopBackOff" else None


def _started(dy: Dockyard, name: str) -> str:
    return dy("inspect", "--format", "{{.State.StartedAt}}", name).stdout.strip()


CRASH = deployment("crash", """\
      - name: main
        image: box:1
        command: [sh, -c, "sleep 1; exit 3"]
      - name: side
        image: box:1
        command: [sleep, "300"]
""", port=None)


def _play(dy: Dockyard, name: str, text: str) -> tuple[Path, str, tuple[str, str]]:
    """Play Deployment ``name``: the file, its one pod, and what must stay the same
    while its main container restarts (the pod's address, when its side started)."""
    path = _copy(dy, f"{name}.yaml", text)
    dy("kube", "play", "-d", str(path))
    (pod,) = _pods(dy, f"default.Deployment.{name}")
    return path, pod, (_address(dy, pod), _started(dy, f"{pod}-side"))


def _the_same_pod(dy: Dockyard, name: str, pod: str, kept: tuple[str, str]) -> None:
    """The same pod all along: its address, its side container never restarted."""
    assert _pods(dy, f"default.Deployment.{name}") == [pod]
    assert (_address(dy, pod), _started(dy, f"{pod}-side")) == kept
    assert _status(dy, pod, "side")["restartCount"] == 0


def test_an_exiting_container_restarts_in_its_pod_with_back_off(dy: Dockyard) -> None:
    path, pod, kept = _play(dy, "crash", CRASH)
    # the first exit restarts it at once; the second waits out 10 s, shown as
    # CrashLoopBackOff with the exit before it as lastState
    until("the first restart", lambda: _status(dy, pod, "main")["restartCount"] >= 1)
    main = until("the back-off", lambda: _backing_off(dy, pod, "main"), timeout=30)
    waiting = main["state"]["waiting"]
    assert main["restartCount"] == 1
    assert waiting["message"] == f"back-off 10s restarting failed container=main pod={pod}"
    assert main["lastState"]["terminated"]["exitCode"] == 3
    assert main["lastState"]["terminated"]["reason"] == "Error"
    row = dy("kube", "get", "pods").stdout.splitlines()[1].split()
    assert row[0] == pod and row[2] in ("CrashLoopBackOff", "Running")
    until("the second restart", lambda: _status(dy, pod, "main")["restartCount"] == 2,
          timeout=30)
    _the_same_pod(dy, "crash", pod, kept)
    assert dy("kube", "get", "pods").stdout.splitlines()[1].split()[3] == "2"  # RESTARTS
    dy("kube", "down", str(path))
    _nothing_left(dy)


LIVE = deployment("live", """\
      - name: main
        image: box:1
        command: [sh, -c, "mkdir -p /www && echo live > /www/index.html && touch /tmp/alive
                  && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080}]
        livenessProbe:
          exec: {command: [test, -f, /tmp/alive]}
          periodSeconds: 1
          failureThreshold: 1
      - name: side
        image: box:1
        command: [sleep, "300"]
""")


def test_a_failing_liveness_probe_restarts_only_that_container(dy: Dockyard) -> None:
    path, pod, kept = _play(dy, "live", LIVE)
    service = _address(dy, "svc-default-live")
    assert until("live behind its Service", lambda: _http(service, 80)) == "live"
    dy("exec", f"{pod}-main", "touch", "/tmp/mark")
    dy("exec", f"{pod}-main", "rm", "/tmp/alive")
    until("the container restarted", lambda: _status(dy, pod, "main")["restartCount"] == 1,
          timeout=30)
    main = _status(dy, pod, "main")
    assert main["lastState"]["terminated"]["exitCode"] == 137  # killed (no grace period)
    # a new container, as the kubelet makes: its root filesystem fresh
    until("the new container running", lambda: "running" in _status(dy, pod, "main")["state"])
    assert dy("exec", f"{pod}-main", "test", "-f", "/tmp/mark", check=False).returncode == 1
    _the_same_pod(dy, "live", pod, kept)
    # its command made /tmp/alive again: healthy, and behind the Service once more
    assert until("live back behind its Service", lambda: _http(service, 80)) == "live"
    assert f"pod {pod}: container main failed liveness probe, will be restarted" in _log(dy)
    assert "replacing it" not in _log(dy)
    dy("kube", "down", str(path))
    _nothing_left(dy)


SERVING = """\
      - name: main
        image: box:1
        command: [sh, -c, "mkdir -p /www && echo NAME > /www/index.html
                  && exec httpd -f -p 8080 -h /www"]
"""
# an exec startup probe that hangs until the test lets it go (timeoutSeconds far
# beyond the test's own wait)
HANGING = """\
        startupProbe:
          exec: {command: [sh, -c, "while [ ! -f /tmp/go ]; do sleep 0.1; done"]}
          timeoutSeconds: 300
          periodSeconds: 1
"""
QUICK = """\
        readinessProbe:
          httpGet: {path: /ready, port: 8080}
          periodSeconds: 1
"""


def _hanging(dy: Dockyard, pod: str) -> bool:
    """The hanging probe runs in the pod's container."""
    return "while [ ! -f /tmp/go ]" in dy("exec", f"{pod}-main", "ps", "-o", "args",
                                          check=False).stdout


def test_a_hanging_probe_holds_no_other_probe_back(dy: Dockyard) -> None:
    slow = deployment("slow", SERVING.replace("NAME", "slow") + HANGING, port=None)
    quick = deployment("quick", SERVING.replace("NAME", "quick") + QUICK, port=None)
    path = _copy(dy, "probed.yaml", slow + "---\n" + quick)
    dy("kube", "play", "-d", str(path))
    (slow_pod,) = _pods(dy, "default.Deployment.slow")
    (quick_pod,) = _pods(dy, "default.Deployment.quick")
    until("slow's startup probe under way", lambda: _hanging(dy, slow_pod))
    time.sleep(1.5)  # a probe period of quick's: not ready yet (/ready is 404)
    assert _get(dy, "deploy", "quick")["status"]["readyReplicas"] == 0
    # quick's readiness flips while slow's probe still hangs (run one after another,
    # it would wait for that probe's 300 s timeout)
    dy("exec", f"{quick_pod}-main", "touch", "/www/ready")
    began = time.monotonic()
    until("quick ready", lambda: _get(dy, "deploy", "quick")["status"]["readyReplicas"] == 1,
          timeout=30)
    print(f"quick's readiness flipped {time.monotonic() - began:.2f}s after /ready "
          "appeared (periodSeconds 1)")
    assert _hanging(dy, slow_pod)
    assert _get(dy, "deploy", "slow")["status"]["readyReplicas"] == 0
    dy("exec", f"{slow_pod}-main", "touch", "/tmp/go")
    until("slow ready", lambda: _get(dy, "deploy", "slow")["status"]["readyReplicas"] == 1,
          timeout=30)
    dy("kube", "down", str(path))
    _nothing_left(dy)


ENDING = """\
apiVersion: v1
kind: Pod
metadata: {name: ending}
spec:
  terminationGracePeriodSeconds: 20
  containers:
CONTAINERS  volumes:
  - {name: out, hostPath: {path: OUT, type: DirectoryOrCreate}}
"""
# each container's preStop handler waits until every container's has begun: only
# handlers run side by side all finish within the grace period
ONE = """\
  - name: NAME
    image: box:1
    command: [sh, -c, "trap 'touch /out/NAME-term; exit 0' TERM; while true; do sleep 0.1;
              done"]
    lifecycle:
      preStop:
        exec: {command: [sh, -c, "touch /out/NAME-pre; while [ $(ls /out | grep -c pre)
                         -lt 3 ]; do sleep 0.1; done; touch /out/NAME-done"]}
    volumeMounts: [{name: out, mountPath: /out}]
"""


def test_a_pods_containers_end_together_within_one_grace_period(dy: Dockyard) -> None:
    out = dy.root.parent / "ending-out"
    names = ("one", "two", "three")
    containers = "".join(ONE.replace("NAME", n) for n in names)
    path = _copy(dy, "ending.yaml", ENDING.replace("CONTAINERS", containers).replace(
        "OUT", str(out)))
    dy("kube", "play", "-d", str(path))
    began = time.monotonic()
    dy("kube", "down", str(path))
    print(f"down of 3 containers with preStop handlers took {time.monotonic() - began:.2f}s "
          "(grace period 20 s)")
    # every handler saw the others begin and finished, and only then came each
    # container's stop signal (its trap ran: a stop, not a kill)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}-{what}" for n in names for what in ("pre", "done", "term"))
    _nothing_left(dy)
