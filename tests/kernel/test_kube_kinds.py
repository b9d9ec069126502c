"""`dockyard kube`: a DaemonSet (one pod on this host), Jobs (completions,
parallelism, backoffLimit) with their status read back, and namespaces that keep
the same names apart."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from dockyard.testing.cli import Dockyard
from dockyard.testing.poll import until
from tests.kernel.kube_support import kube_dy  # noqa: F401 (the `dy` fixture)
from tests.kernel.test_kube import _copy, _nothing_left

pytestmark = pytest.mark.root


WORK = """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers:
      - {name: main, image: box:1, command: [sleep, "300"]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: step, image: box:1, command: [sh, -c, "echo $HOSTNAME done"]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: broken}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - {name: step, image: box:1, command: [sh, -c, "exit 4"]}
"""


def _get(dy: Dockyard, *args: str) -> Any:
    return yaml.safe_load(dy("kube", "get", *args, "-o", "yaml").stdout)


def _restarts(dy: Dockyard, pod: str, container: str | None = None) -> int:
    """The restartCount of the pod's ``container`` (its first one without)."""
    found = _get(dy, "pod", pod)["status"]["containerStatuses"]
    return int(next(c for c in found if container in (None, c["name"]))["restartCount"])


def test_daemonset_and_jobs(dy: Dockyard) -> None:
    path = _copy(dy, "work.yaml", WORK)
    dy("kube", "play", "-d", str(path))
    until("the DaemonSet's pod ready", lambda: _get(dy, "ds", "agent")["status"][
        "numberReady"] == 1)
    done = until("the Job to complete", lambda: (_get(dy, "job", "batch")["status"].get(
        "conditions") or [{}])[0].get("type") == "Complete" and _get(dy, "job", "batch"),
                 timeout=60)
    assert done["status"]["succeeded"] == 3 and "failed" not in done["status"]
    failed = until("the broken Job to fail", lambda: (_get(dy, "job", "broken")["status"].get(
        "conditions") or [{}])[0].get("reason") == "BackoffLimitExceeded" and _get(
            dy, "job", "broken"), timeout=60)
    assert failed["status"]["failed"] == 2  # the first try and one retry (backoffLimit 1)
    pods = _get(dy, "pods")["items"]
    by_owner: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        by_owner.setdefault(pod["metadata"]["ownerReferences"][0]["name"], []).append(pod)
    assert len(by_owner["agent"]) == 1 and by_owner["agent"][0]["status"]["phase"] == "Running"
    assert [p["status"]["phase"] for p in by_owner["batch"]] == ["Succeeded"] * 3
    assert [p["status"]["phase"] for p in by_owner["broken"]] == ["Failed"] * 2
    exit_codes = {p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"]
                  for p in by_owner["broken"]}
    assert exit_codes == {4}
    table = dy("kube", "get", "jobs").stdout.split()
    assert table[3:] == ["batch", "3/3", "Complete", "broken", "0/1", "Failed"]
    dy("kube", "down", str(path))
    _nothing_left(dy)


SOLO = """\
apiVersion: v1
kind: Namespace
metadata: {name: NS}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: NS}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: NS, labels: {app: solo}}
spec:
  containers:
  - name: main
    image: box:1
    command: [sh, -c, "echo NS > /data/who; exec sleep 300"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
"""


def test_namespaces_keep_the_same_names_apart(dy: Dockyard) -> None:
    # two namespaces in one play: a network, a volume and a pod each, same names
    both = _copy(dy, "both.yaml", SOLO.replace("NS", "team-a") + "---\n"
                 + SOLO.replace("NS", "team-b"))
    dy("kube", "play", "-d", str(both))
    for ns in ("team-a", "team-b"):
        assert until(f"{ns}'s pod to write", lambda ns=ns: dy(
            "exec", f"{ns}.solo-main", "cat", "/data/who", check=False).stdout) == f"{ns}\n"
        assert f"kube-{ns}" in dy("network", "ls").stdout
    assert {"team-a.data", "team-b.data"} <= set(dy("volume", "ls", "-q").stdout.split())
    dy("kube", "down", str(both))
    _nothing_left(dy)
    assert "kube-team" not in dy("network", "ls").stdout
    # and in two plays, one taken down while the other runs
    team_a = _copy(dy, "team-a.yaml", SOLO.replace("NS", "team-a"))
    team_b = _copy(dy, "team-b.yaml", SOLO.replace("NS", "team-b"))
    assert "namespace team-a" in dy("kube", "play", "-d", str(team_a)).stdout
    dy("kube", "play", "-d", str(team_b))
    for ns in ("team-a", "team-b"):
        (pod,) = _get(dy, "pods", "-n", ns)["items"]
        assert pod["metadata"]["name"] == "solo" and pod["metadata"]["namespace"] == ns
        assert _get(dy, "ns", ns)["status"]["phase"] == "Active"
        doc = json.loads(dy("container", "inspect", f"{ns}.solo-main").stdout)[0]
        assert "kube-" + ns in doc["NetworkSettings"]["Networks"] or doc["HostConfig"][
            "NetworkMode"].startswith("container:")
        assert dy("exec", f"{ns}.solo-main", "hostname").stdout.strip() == "solo"
    assert dy("kube", "get", "pods").stderr.strip() == "No resources found in default namespace."
    dy("kube", "down", str(team_a))
    assert "kube-team-a" not in dy("network", "ls").stdout
    assert _get(dy, "pods", "-n", "team-b")["items"][0]["status"]["phase"] == "Running"
    dy("kube", "down", str(team_b))
    _nothing_left(dy)
    assert "kube-team-b" not in dy("network", "ls").stdout


COMPOSE = """\
services:
  api:
    image: box:1
    env_file: [api.env]
    command: [sh, -c, "mkdir -p /www && echo api says $$GREETING > /www/index.html
              && echo kept > /data/mark && exec httpd -f -p 8080 -h /www"]
    ports: ["8080"]
    volumes: [data:/data]
    healthcheck:
      test: [CMD, wget, -q, -O, /dev/null, "http://127.0.0.1:8080/"]
      interval: 1s
  front:
    image: box:1
    depends_on:
      api: {condition: service_healthy}
    command: [sh, -c, "mkdir -p /www && until wget -q -O /www/index.html http://api:8080/;
              do sleep 1; done && exec httpd -f -p 8081 -h /www"]
    ports: ["127.0.0.1:HOSTPORT:8081"]
volumes:
  data: {}
"""


def test_compose_project_round_trip(dy: Dockyard) -> None:
    from dockyard.kube.load import schema_error
    from dockyard.testing.cli import free_port
    from tests.kernel.test_kube import _address, _http

    folder = dy.root.parent / "rt"
    folder.mkdir()
    port = free_port()
    (folder / "compose.yaml").write_text(COMPOSE.replace("HOSTPORT", str(port)))
    (folder / "api.env").write_text("GREETING=hello-from-env\n")
    compose = ["compose", "-f", str(folder / "compose.yaml"), "-p", "rt"]
    dy(*compose, "up", "-d")
    try:
        before = until("the compose app", lambda: _http("127.0.0.1", port), timeout=60)
        generated = dy("kube", "generate", "rt").stdout
        converted = dy(*compose, "convert", "--kubernetes").stdout
    finally:
        dy(*compose, "down", "-v")
    assert before == "api says hello-from-env"
    assert generated == converted
    docs = list(yaml.safe_load_all(generated))
    assert all(schema_error(d) is None for d in docs)
    assert generated.startswith("# Kubernetes 1.37 objects")
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert kinds == [("PersistentVolumeClaim", "rt-data"), ("ConfigMap", "api-env"),
                     ("Deployment", "api"), ("Service", "api"), ("Deployment", "front"),
                     ("Service", "front")]
    front = docs[4]["spec"]["template"]["spec"]
    assert front["initContainers"][0]["name"] == "wait-for-api"
    path = _copy(dy, "rt.yaml", generated)
    dy("kube", "play", "-d", str(path))
    service = _address(dy, "svc-default-front")
    assert until("the same app under kube play", lambda: _http(service, 8081),
                 timeout=60) == before
    dy("kube", "down", str(path))
    _nothing_left(dy)


NETPROBES = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: net}
spec:
  replicas: 1
  selector: {matchLabels: {app: net}}
  template:
    metadata: {labels: {app: net}}
    spec:
      containers:
      - name: web
        image: box:1
        command: [sh, -c, "mkdir -p /www && echo up > /www/index.html
                  && httpd -p 8080 -h /www && exec sleep 300"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /ready, port: http}
          periodSeconds: 1
        livenessProbe:
          tcpSocket: {port: 8080}
          initialDelaySeconds: 2
          periodSeconds: 1
          failureThreshold: 2
---
apiVersion: v1
kind: Service
metadata: {name: net}
spec:
  selector: {app: net}
  ports: [{port: 80, targetPort: http}]
"""


def test_http_and_tcp_probes_run_by_the_controller(dy: Dockyard) -> None:
    from tests.kernel.test_kube import _address, _http, _pods

    path = _copy(dy, "net.yaml", NETPROBES)
    dy("kube", "play", "-d", str(path))
    (pod,) = _pods(dy, "default.Deployment.net")
    service = _address(dy, "svc-default-net")
    time.sleep(2)  # a few probe periods: /ready answers 404, so not ready
    assert _http(service, 80) is None
    assert _get(dy, "pod", pod)["status"]["conditions"][0]["status"] == "False"
    dy("exec", f"{pod}-web", "touch", "/www/ready")
    assert until("the httpGet probe to pass", lambda: _http(service, 80)) == "up"
    assert _get(dy, "deploy", "net")["status"]["readyReplicas"] == 1
    # the tcpSocket liveness probe: httpd gone, the container is restarted in its pod
    dy("exec", f"{pod}-web", "killall", "httpd")
    until("the container restarted", lambda: _restarts(dy, pod) == 1, timeout=30)
    assert _pods(dy, "default.Deployment.net") == [pod]
    log = next((dy.root / "kube" / "controllers").glob("*.log")).read_text()
    assert f"pod {pod}: container web failed liveness probe, will be restarted" in log
    dy("kube", "down", str(path))
    _nothing_left(dy)


STARTUP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME}
spec:
  replicas: 1
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      containers:
      - name: web
        image: box:1
        command: [sh, -c, "mkdir -p /www && echo up > /www/index.html && sleep DELAY
                  && exec httpd -f -p 8080 -h /www"]
        startupProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
          failureThreshold: LIMIT
        livenessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
          failureThreshold: 1
"""


def test_a_startup_probe_holds_the_others_back_and_gives_up(dy: Dockyard) -> None:
    from tests.kernel.test_kube import _pods

    slow = STARTUP.replace("NAME", "slow").replace("DELAY", "3").replace("LIMIT", "20")
    never = STARTUP.replace("NAME", "never").replace("DELAY", "300").replace("LIMIT", "2")
    path = _copy(dy, "startup.yaml", slow + "---\n" + never)
    dy("kube", "play", "-d", str(path))
    (first,) = _pods(dy, "default.Deployment.slow")
    (doomed,) = _pods(dy, "default.Deployment.never")
    # slow: not ready while it starts (its liveness probe, which would fail, waits),
    # then ready, and the same pod
    assert _get(dy, "deploy", "slow")["status"]["readyReplicas"] == 0
    until("slow to be ready", lambda: _get(dy, "deploy", "slow")["status"][
        "readyReplicas"] == 1, timeout=30)
    assert _pods(dy, "default.Deployment.slow") == [first]
    # never: its startup probe gives up and its container is restarted, in its pod
    until("never's container restarted", lambda: _restarts(dy, doomed) >= 1, timeout=30)
    assert _pods(dy, "default.Deployment.never") == [doomed]
    log = next((dy.root / "kube" / "controllers").glob("*.log")).read_text()
    assert f"pod {doomed}: container web failed startup probe, will be restarted" in log
    dy("kube", "down", str(path))
    _nothing_left(dy)


HOOKS = """\
apiVersion: v1
kind: Pod
metadata: {name: hooked}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: box:1
    command: [sleep, "300"]
    lifecycle:
      postStart: {exec: {command: [sh, -c, "echo started > /tmp/post-start"]}}
      preStop: {exec: {command: [sh, -c, "echo stopping > /out/pre-stop"]}}
    volumeMounts: [{name: out, mountPath: /out}]
  volumes:
  - {name: out, hostPath: {path: OUT, type: DirectoryOrCreate}}
"""


def test_lifecycle_hooks_and_run_as_non_root(dy: Dockyard) -> None:
    out = dy.root.parent / "hook-out"
    path = _copy(dy, "hooks.yaml", HOOKS.replace("OUT", str(out)))
    dy("kube", "play", "-d", str(path))
    # postStart ran once the container started, before play returned
    assert dy("exec", "hooked-main", "cat", "/tmp/post-start").stdout == "started\n"
    dy("kube", "down", str(path))
    assert (out / "pre-stop").read_text() == "stopping\n"  # preStop ran before removal
    _nothing_left(dy)
    # runAsNonRoot: box:1 runs as root, so the pod is refused before anything is made
    refused = _copy(dy, "hooks.yaml", HOOKS.replace("OUT", str(out)).replace(
        "  terminationGracePeriodSeconds: 5", "  securityContext: {runAsNonRoot: true}"))
    result = dy("kube", "play", "-d", str(refused), check=False)
    assert result.returncode != 0
    assert "Pod/hooked" in result.stderr and (
        "container main: container has runAsNonRoot and image will run as root"
        in result.stderr)
    _nothing_left(dy)
    # … and with a non-root runAsUser it runs as that user
    _copy(dy, "hooks.yaml", HOOKS.replace("OUT", str(out)).replace(
        "  terminationGracePeriodSeconds: 5",
        "  securityContext: {runAsNonRoot: true, runAsUser: 1000}").replace(
        "> /tmp/post-start", "> /dev/null"))  # uid 1000 may not write to this /tmp
    dy("kube", "play", "-d", str(refused))
    assert dy("exec", "hooked-main", "id", "-u").stdout.strip() == "1000"
    dy("kube", "down", str(refused))
    _nothing_left(dy)
