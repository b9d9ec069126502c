"""`dockyard kube`: the issue's canonical example whole — a Deployment `myapp` of 5
replicas from a locally built image behind a Service: the Service spreads requests
over the five, two killed pods come back, and playing the file again with a new image
tag rolls out (RollingUpdate, readiness-gated) while a client loop counts zero failed
requests; Recreate takes every old pod away before a new one starts; `kube get`
reads it all back Kubernetes-shaped.

Traffic goes only to the project bridge these tests create."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import yaml

from dockyard.testing.cli import Dockyard
from dockyard.testing.poll import until
from tests.kernel.kube_support import kube_dy  # noqa: F401 (the `dy` fixture)
from tests.kernel.test_kube import DATA, _address, _copy, _http, _nothing_left, _pods

pytestmark = pytest.mark.root


def _build(dy: Dockyard, tag: str) -> None:
    context = dy.root.parent / f"ctx-{tag}"
    context.mkdir()
    (context / "version").write_text(f"{tag}\n")
    (context / "Dockerfile").write_text("FROM box:1\nCOPY version /version\n"
                                        "COPY version /www/.keep\n")
    dy("build", "-q", "-t", f"myapp:{tag}", str(context))


def _deployment(dy: Dockyard) -> dict[str, object]:
    out = dy("kube", "get", "deploy", "myapp", "-o", "yaml").stdout
    doc: dict[str, object] = yaml.safe_load(out)
    return doc


def _rolled_out(dy: Dockyard, replicas: int) -> bool:
    state = _deployment(dy)["status"]
    assert isinstance(state, dict)
    return (state.get("updatedReplicas"), state.get("readyReplicas"),
            state.get("replicas")) == (replicas,) * 3


def _ask(address: str) -> str | None:
    """GET / with a 10 s timeout: a failure is a refused, reset or unanswered
    request, not one slowed by a loaded machine (bench/kube.py reports those)."""
    try:
        with socket.create_connection((address, 80), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    return body.decode().strip() if head.startswith(b"HTTP/1.") else None


class Client(threading.Thread):
    """Requests to the Service one after another, counting answers and failures."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.answers: list[str] = []
        self.failures = 0
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 240  # bounded, whatever happens
        while not self.done.is_set() and time.monotonic() < deadline:
            body = _ask(self.address)
            if body is None:
                self.failures += 1
            else:
                self.answers.append(body)
            time.sleep(0.01)


def test_canonical_five_replicas_heal_and_roll_out_without_a_failed_request(
        dy: Dockyard) -> None:
    _build(dy, "v1")
    _build(dy, "v2")
    path = _copy(dy, "canonical.yaml")
    dy("kube", "play", "--detach", str(path))
    until("five ready replicas", lambda: _rolled_out(dy, 5), timeout=90, every=0.5)
    pods = _pods(dy)
    assert len(pods) == 5 and all(p.startswith("myapp-") for p in pods)
    service = _address(dy, "svc-default-myapp")
    seen: set[str] = set()

    def spread() -> bool:
        body = _http(service, 80) or ""
        seen.add(body.split()[0] if body else "")
        return set(pods) <= seen

    until("the Service to answer from all five", spread, timeout=60)
    assert "v1" in (_http(service, 80) or "")
    # two pods killed: two new ones, within seconds
    dy("kill", pods[0], pods[1])
    until("two replacements", lambda: len(_pods(dy)) == 5 and not {pods[0], pods[1]}
          & set(_pods(dy)), timeout=30)
    until("five ready again", lambda: _rolled_out(dy, 5), timeout=60, every=0.5)
    # a new image tag rolls out while a client keeps asking
    client = Client(service)
    client.start()
    until("the client's first answers", lambda: len(client.answers) > 5)
    before = set(_pods(dy))
    out = dy("kube", "play", "--detach", str(_copy(
        dy, "canonical.yaml", path.read_text().replace("myapp:v1", "myapp:v2")))).stdout
    assert "Deployment/myapp configured" in out and "Service/myapp unchanged" in out
    until("the rollout", lambda: _rolled_out(dy, 5) and not before & set(_pods(dy)),
          timeout=180, every=0.5)
    time.sleep(1)
    client.done.set()
    client.join()
    versions = [answer.split()[1] for answer in client.answers]
    assert client.failures == 0, f"{client.failures} failed of {len(client.answers)}"
    assert versions[0] == "v1" and versions[-1] == "v2"
    assert len(client.answers) > 50
    # every old pod retired (the controller says so)
    log = next((dy.root / "kube" / "controllers").glob("*.log")).read_text()
    assert log.count("retired pod") == 5
    got = _deployment(dy)
    assert got["kind"] == "Deployment" and got["metadata"]["name"] == "myapp"  # type: ignore[index]
    listed = json.loads(dy("kube", "get", "pods", "-o", "json").stdout)
    assert listed["kind"] == "List" and len(listed["items"]) == 5
    assert {i["status"]["phase"] for i in listed["items"]} == {"Running"}
    assert {i["spec"]["containers"][0]["image"] for i in listed["items"]} == {"myapp:v2"}
    table = dy("kube", "get", "deploy").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE"]
    assert table[1].split() == ["myapp", "5/5", "5", "5"]
    dy("kube", "down", str(path))
    _nothing_left(dy)


RECREATE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: myapp}
spec:
  replicas: 2
  selector: {matchLabels: {app: myapp}}
  strategy: {type: Recreate}
  template:
    metadata: {labels: {app: myapp}}
    spec:
      containers:
      - {name: web, image: myapp:v1, command: [sleep, "300"]}
"""


def test_recreate_removes_every_old_pod_before_a_new_one_starts(dy: Dockyard) -> None:
    _build(dy, "v1")
    path = _copy(dy, "recreate.yaml", RECREATE)
    dy("kube", "play", "-d", str(path))
    old = until("two pods", lambda: len(_pods(dy)) == 2 and _pods(dy))
    _copy(dy, "recreate.yaml", RECREATE.replace('"300"]}', '"300"], env: [{name: A, '
                                                'value: b}]}'))
    assert "Deployment/myapp configured" in dy("kube", "play", "-d", str(path)).stdout
    log = next((dy.root / "kube" / "controllers").glob("*.log"))

    def events() -> list[str]:
        after = log.read_text().partition("desired state re-read")[2].splitlines()
        return [line.split(": ")[1].split()[0] for line in after if "pod " in line]

    until("the new pods", lambda: len(events()) == 4, timeout=60)
    assert events() == ["retired", "retired", "started", "started"], log.read_text()
    assert len(_pods(dy)) == 2 and not set(old) & set(_pods(dy))
    env = json.loads(dy("container", "inspect", f"{_pods(dy)[0]}-web").stdout)[0]
    assert "A=b" in env["Config"]["Env"]
    dy("kube", "down", str(path))
    _nothing_left(dy)


def test_a_retired_pod_finishes_the_connections_it_has(dy: Dockyard) -> None:
    _build(dy, "v1")
    text = (DATA / "canonical.yaml").read_text().replace("replicas: 5", "replicas: 1").replace(
        "          periodSeconds: 1", "          periodSeconds: 1\n          timeoutSeconds: 5")
    path = _copy(dy, "drain.yaml", text)
    dy("kube", "play", "-d", str(path))
    until("one ready replica", lambda: _rolled_out(dy, 1), timeout=60, every=0.5)
    (old,) = _pods(dy)
    service = _address(dy, "svc-default-myapp")
    with socket.create_connection((service, 80), timeout=30) as held:  # relayed to `old`
        time.sleep(0.5)
        _copy(dy, "drain.yaml", text.replace("            fieldPath: metadata.name",
                                             "            fieldPath: metadata.name\n"
                                             "        - {name: EDITED, value: 'yes'}"))
        dy("kube", "play", "-d", str(path))
        time.sleep(2.5)  # the old pod is out of the Service, and still waits for us
        assert old in _pods(dy)
        held.sendall(b"GET / HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := held.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.") and old.encode() in answer
    until("the rollout", lambda: old not in _pods(dy) and _rolled_out(dy, 1), timeout=60,
          every=0.5)
    dy("kube", "down", str(path))
    _nothing_left(dy)
