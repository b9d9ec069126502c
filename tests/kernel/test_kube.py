"""`dockyard kube`: the issue's canonical example at small scale (a 3-replica
Deployment behind a Service, a killed pod replaced), a Pod's shared namespaces and
config sources, bad input that leaves nothing behind, and generate → play.

Traffic goes only to 127.0.0.1 and the project bridge these tests create.  (Podman,
the issue's peer, is not installed on this machine kind: no comparison test.)"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from dockyard.kube.load import schema_error
from dockyard.testing.cli import Dockyard, free_port
from dockyard.testing.poll import until
from tests.kernel.kube_support import kube_dy  # noqa: F401 (the `dy` fixture)

pytestmark = pytest.mark.root

DATA = Path(__file__).parent.parent / "data" / "kube"


def _http(address: str, port: int) -> str | None:
    """The body of GET / (one connection), or None if it failed."""
    try:
        with socket.create_connection((address, port), timeout=3) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    return body.decode().strip() if head.startswith(b"HTTP/1.") else None


def _address(dy: Dockyard, name: str) -> str:
    doc = json.loads(dy("container", "inspect", name).stdout)[0]
    (network,) = doc["NetworkSettings"]["Networks"].values()
    return str(network["IPAddress"])


def _pods(dy: Dockyard, owner: str = "default.Deployment.myapp") -> list[str]:
    """Running infra containers (one per pod) of ``owner``."""
    out = dy("ps", "--filter", f"label=io.dockyard.kube.owner={owner}", "--filter",
             "label=io.dockyard.kube.role=infra", "--format", "{{.Names}}").stdout
    return sorted(out.split())


def _copy(dy: Dockyard, name: str, text: str | None = None) -> Path:
    path = dy.root.parent / name
    path.write_text(text if text is not None else (DATA / name).read_text())
    return path


def _nothing_left(dy: Dockyard) -> None:
    assert dy("ps", "-a", "-q").stdout.split() == []
    assert "kube-default" not in dy("network", "ls").stdout
    assert dy("volume", "ls", "-q").stdout.split() == []
    assert not list((dy.root / "kube" / "controllers").glob("*.json"))
    # this root's own leftovers (the shared leak check also sees other roots' tests)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f"{dy.root}/" not in mounts
    tag = f"dockyard-{dy.layout.owner_tag}-"
    assert not [p for p in Path("/sys/fs/cgroup/memory").iterdir() if p.name.startswith(tag)]
    controllers = [p for p in Path("/proc").iterdir() if p.name.isdigit()
                   and str(dy.root).encode() in _cmdline(p)]
    assert controllers == []


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_deployment_with_service_spreads_and_is_reconciled(dy: Dockyard) -> None:
    path = _copy(dy, "myapp.yaml")
    out = dy("kube", "play", "--detach", str(path)).stdout
    assert out.count("pod myapp-") == 3 and "service myapp" in out
    pods = _pods(dy)
    assert len(pods) == 3
    service = _address(dy, "svc-default-myapp")
    # the ClusterIP answers and spreads connections over all three pods
    seen: set[str] = set()

    def spread() -> bool:
        body = _http(service, 80)
        if body:
            seen.add(body.split()[0])
        return set(pods) <= seen

    until("the Service to reach every pod", spread, timeout=60)
    assert seen == set(pods)
    # the DNS name of the Service, from inside a pod, with the ConfigMap's env
    inside = until("the Service's DNS name", lambda: dy(
        "exec", f"{pods[0]}-web", "wget", "-qO-", "http://myapp.default.svc.cluster.local/",
        check=False).stdout)
    assert inside.split()[0] in pods and inside.split()[1] == "hello"
    # a killed pod is replaced within seconds
    dy("kill", pods[1])
    until("a replacement pod", lambda: len(_pods(dy)) == 3 and pods[1] not in _pods(dy),
          timeout=30)
    fresh = (set(_pods(dy)) - set(pods)).pop()
    until("the new pod behind the Service",
          lambda: any((_http(service, 80) or "").startswith(fresh) for _ in range(6)),
          timeout=30)
    out = dy("kube", "down", str(path)).stdout
    assert "removed controller" in out
    _nothing_left(dy)


POD = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: site}
data: {index.html: from-configmap}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {TOKEN: s3cret}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: duo, labels: {app: duo}}
spec:
  initContainers:
  - {name: prep, image: box:1, command: [sh, -c, "echo prepared > /data/init"],
     volumeMounts: [{name: data, mountPath: /data}]}
  containers:
  - name: web
    image: box:1
    command: [httpd, -f, -p, "8080", -h, /site]
    ports: [{containerPort: 8080, hostPort: HOSTPORT, hostIP: 127.0.0.1}]
    volumeMounts: [{name: site, mountPath: /site}]
    securityContext: {readOnlyRootFilesystem: true}
  - name: side
    image: box:1
    command: [sleep, "300"]
    env:
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: creds, key: TOKEN}}
    resources: {limits: {memory: 32Mi}}
    volumeMounts: [{name: data, mountPath: /data}, {name: scratch, mountPath: /scratch}]
  volumes:
  - {name: site, configMap: {name: site}}
  - {name: data, persistentVolumeClaim: {claimName: data}}
  - {name: scratch, emptyDir: {}}
---
apiVersion: v1
kind: Service
metadata: {name: duo}
spec:
  type: NodePort
  selector: {app: duo}
  ports: [{port: 8081, targetPort: 8080, nodePort: NODEPORT}]
"""


def test_pod_shares_namespaces_and_uses_config_sources(dy: Dockyard) -> None:
    port, node_port = free_port(), free_port()
    path = _copy(dy, "duo.yaml", POD.replace("HOSTPORT", str(port)).replace(
        "NODEPORT", str(node_port)))
    dy("kube", "play", "--detach", str(path))

    def ns(container: str, kind: str) -> str:
        return dy("exec", container, "readlink", f"/proc/self/ns/{kind}").stdout.strip()

    for kind in ("net", "ipc", "uts"):
        assert ns("duo-web", kind) == ns("duo-side", kind)
    assert dy("exec", "duo-side", "hostname").stdout.strip() == "duo"
    assert until("the hostPort", lambda: _http("127.0.0.1", port)) == "from-configmap"
    assert until("the NodePort", lambda: _http("127.0.0.1", node_port)) == "from-configmap"
    assert "TOKEN=s3cret" in dy("exec", "duo-side", "env").stdout
    assert dy("exec", "duo-side", "cat", "/data/init").stdout.strip() == "prepared"
    written = dy("exec", "duo-web", "touch", "/x", check=False)
    assert written.returncode != 0  # readOnlyRootFilesystem
    memory = json.loads(dy("container", "inspect", "duo-side").stdout)[0]["HostConfig"][
        "Memory"]
    assert memory == 32 * 2**20
    assert "data" in dy("volume", "ls", "-q").stdout.split()
    # the played pod, generated back: one Pod with both containers and the init one
    import yaml

    docs = list(yaml.safe_load_all(dy("kube", "generate", "--kind", "Pod", "duo").stdout))
    (pod,) = [d for d in docs if d["kind"] == "Pod"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["web", "side"]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["prep"]
    assert all(schema_error(d) is None for d in docs)
    dy("kube", "down", str(path))
    _nothing_left(dy)


@pytest.mark.parametrize(("text", "message"), [
    ("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\n",
     "unsupported kind CronJob"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
     "  - {name: c, image: box:1, imagePull: Always}\n",
     "Pod/p (%s#2): spec.containers[0]: Additional properties are not allowed"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {app: none}\n"
     "  ports: [{port: 80}]\n", "Service/s (%s#2): spec.selector {'app': 'none'} matches no pod"),
])
def test_bad_input_is_named_and_creates_nothing(dy: Dockyard, text: str, message: str) -> None:
    good = "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec:\n  containers:\n" \
           "  - {name: c, image: box:1, command: [sleep, '30']}\n---\n"
    path = _copy(dy, "bad.yaml", good + text)
    result = dy("kube", "play", "--detach", str(path), check=False)
    assert result.returncode != 0
    assert (message % path if "%s" in message else message) in result.stderr
    _nothing_left(dy)


def test_a_failing_init_container_fails_its_pod_and_a_failed_play_is_undone(
        dy: Dockyard) -> None:
    # an init container that fails fails its pod (told, and the pod replaced), as
    # in Kubernetes: the play itself stands
    text = (DATA / "myapp.yaml").read_text().replace("replicas: 3", "replicas: 1").replace(
        "      containers:", "      initContainers:\n      - {name: fail, image: box:1, "
        "command: [sh, -c, 'exit 3']}\n      containers:")
    path = _copy(dy, "half.yaml", text)
    dy("kube", "play", "--detach", str(path))
    log = next((dy.root / "kube" / "controllers").glob("*.log"))
    until("the failure told", lambda: "init container myapp-" in log.read_text()
          and "exited with code 3" in log.read_text())
    dy("kube", "down", str(path))
    _nothing_left(dy)
    # a play that fails on the way (a hostPort already taken) leaves nothing
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        text = POD.replace("HOSTPORT", str(port)).replace("NODEPORT", str(free_port()))
        path = _copy(dy, "taken.yaml", text)
        result = dy("kube", "play", "--detach", str(path), check=False)
    assert result.returncode != 0
    assert f"127.0.0.1:{port} failed: port is already allocated" in result.stderr
    _nothing_left(dy)


def test_generate_then_play_reproduces_the_container(dy: Dockyard) -> None:
    import yaml

    dy("run", "-d", "--name", "web", "-e", "GREETING=hi", "-m", "48m", "-p",
       f"127.0.0.1:{free_port()}:8080", "box:1", "sh", "-c",
       "mkdir -p /www; echo $GREETING $HOSTNAME > /www/index.html; "
       "exec httpd -f -p 8080 -h /www")
    generated = dy("kube", "generate", "--pin", "web").stdout
    docs = list(yaml.safe_load_all(generated))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    assert all(schema_error(d) is None for d in docs)
    image = docs[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("box@sha256:")
    dy("rm", "-f", "web")
    path = _copy(dy, "web.yaml", generated)
    dy("kube", "play", "--detach", str(path))
    (pod,) = _pods(dy, "default.Deployment.web")
    doc = json.loads(dy("container", "inspect", f"{pod}-web").stdout)[0]
    assert "GREETING=hi" in doc["Config"]["Env"]
    assert doc["HostConfig"]["Memory"] == 48 * 2**20
    service = _address(dy, "svc-default-web")
    port = docs[1]["spec"]["ports"][0]["port"]
    assert until("the generated Service", lambda: _http(service, port)) == f"hi {pod}"
    dy("kube", "down", str(path))
    _nothing_left(dy)


def test_the_controller_process_goes_with_down(dy: Dockyard) -> None:
    path = _copy(dy, "myapp.yaml", (DATA / "myapp.yaml").read_text().replace(
        "replicas: 3", "replicas: 1"))
    pid = int(dy("kube", "play", "-d", str(path)).stdout.split("controller ")[1])
    assert Path(f"/proc/{pid}").exists()
    dy("kube", "down", str(path))
    until("the controller to exit", lambda: not Path(f"/proc/{pid}").exists())
    _nothing_left(dy)


def test_play_in_the_foreground_removes_everything_when_interrupted(dy: Dockyard) -> None:
    import signal
    import subprocess

    path = _copy(dy, "myapp.yaml", (DATA / "myapp.yaml").read_text().replace(
        "replicas: 3", "replicas: 2"))
    play = subprocess.Popen([*dy.argv, "--root", str(dy.root), "kube", "play", str(path)],
                            env=dy.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        until("two pods", lambda: len(_pods(dy)) == 2)
        dy("kill", _pods(dy)[0])
        until("a replacement", lambda: len(_pods(dy)) == 2 and all(
            p.startswith("myapp-") for p in _pods(dy)))
    finally:
        play.send_signal(signal.SIGINT)
        out, err = play.communicate(timeout=120)
    assert play.returncode == 0, err
    _nothing_left(dy)


READY = (DATA / "myapp.yaml").read_text().replace("replicas: 3", "replicas: 2").replace(
    "        ports:\n        - containerPort: 8080\n",
    "        ports:\n        - containerPort: 8080\n        readinessProbe:\n"
    "          exec: {command: [test, -f, /tmp/ready]}\n          periodSeconds: 1\n")


def test_readiness_gates_the_service_endpoints(dy: Dockyard) -> None:
    path = _copy(dy, "ready.yaml", READY)
    dy("kube", "play", "-d", str(path))
    first, second = _pods(dy)
    service = _address(dy, "svc-default-myapp")
    assert _http(service, 80) is None  # no pod ready: the connection is refused
    # a Service without endpoints says so: in `kube get ep` and in the controller's log
    assert dy("kube", "get", "ep", "myapp").stdout.split()[2:] == ["myapp", "<none>"]
    log = next((dy.root / "kube" / "controllers").glob("*.log")).read_text()
    assert "Service/myapp: no ready endpoints: its connections are refused" in log
    dy("exec", f"{first}-web", "touch", "/tmp/ready")
    until("the ready pod behind the Service", lambda: _http(service, 80))
    assert {(_http(service, 80) or "").split()[0] for _ in range(6)} == {first}
    dy("exec", f"{second}-web", "touch", "/tmp/ready")
    seen: set[str] = set()

    def both() -> bool:
        seen.add((_http(service, 80) or "-").split()[0])
        return {first, second} <= seen

    until("both pods behind the Service", both)
    dy("kube", "down", str(path))
    _nothing_left(dy)
