"""The issue's canonical example, timed: ``kube play`` of a Deployment of 5 replicas
(readinessProbe, a Service) from a locally built image — seconds until all 5 are
ready (``kube get deploy``) — then the file played again with a new image tag:
seconds until the rollout is done (RollingUpdate, maxSurge 1, maxUnavailable 1),
with a client asking the Service over and over meanwhile, counting failed
requests.  Against: the same 5 containers started with ``dockyard run -d`` and
waited healthy (what the controller's path costs over plain runs), and, where
``podman`` is installed, ``podman kube play`` of the same file and ``--replace``
with the new tag.

Usage (as root): python bench/kube.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engines import exit_on_signals

from dockyard.testing.cli import Dockyard, scratch_root, unmount_under

DEPLOYMENT = Path(__file__).resolve().parents[1] / "tests" / "data" / "kube" / "canonical.yaml"
PROBE = ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
WEB = "echo $HOSTNAME $(cat /version) > /www/index.html && exec httpd -f -p 8080 -h /www"


def _build(dy: Dockyard, work: Path, tag: str) -> None:
    context = work / f"ctx-{tag}"
    context.mkdir(exist_ok=True)
    (context / "version").write_text(f"{tag}\n")
    (context / "Dockerfile").write_text("FROM box:1\nCOPY version /version\n"
                                        "COPY version /www/.keep\n")
    dy("build", "-q", "-t", f"myapp:{tag}", str(context))


def _status(dy: Dockyard) -> dict[str, int]:
    doc = json.loads(dy("kube", "get", "deploy", "myapp", "-o", "json").stdout)
    return dict(doc["status"])


def _wait(what: str, check: Callable[[], bool], timeout: float = 300) -> None:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.1)


def _http(address: str) -> str:
    """"" when the Service answered; else what went wrong."""
    start = time.monotonic()
    stage = "connect"
    try:
        with socket.create_connection((address, 80), timeout=3) as sock:
            stage = "answer"
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            head = sock.recv(64)
            return "" if head.startswith(b"HTTP/1.") else f"answer {head!r}"
    except OSError as exc:
        return (f"{type(exc).__name__} waiting for the {stage} after "
                f"{time.monotonic() - start:.2f} s (load average "
                f"{Path('/proc/loadavg').read_text().split()[0]})")


class Client(threading.Thread):
    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address, self.ok, self.failed = address, 0, 0
        self.reasons: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 600
        while not self.done.is_set() and time.monotonic() < deadline:
            why = _http(self.address)
            if not why:
                self.ok += 1
            else:
                self.failed += 1
                self.reasons.append(why)


def kube_run(dy: Dockyard, work: Path) -> tuple[float, float, int, int]:
    path = work / "app.yaml"
    path.write_text(DEPLOYMENT.read_text())
    start = time.monotonic()
    dy("kube", "play", "-d", str(path))
    _wait("5 ready replicas", lambda: _status(dy).get("readyReplicas") == 5)
    ready = time.monotonic() - start
    inspect = json.loads(dy("container", "inspect", "svc-default-myapp").stdout)[0]
    (network,) = inspect["NetworkSettings"]["Networks"].values()
    client = Client(network["IPAddress"])
    client.start()
    path.write_text(DEPLOYMENT.read_text().replace("myapp:v1", "myapp:v2"))
    start = time.monotonic()
    dy("kube", "play", "-d", str(path))
    _wait("the rollout", lambda: _status(dy).get("updatedReplicas") == 5 and _status(dy).get(
        "readyReplicas") == 5 and _status(dy).get("replicas") == 5)
    rollout = time.monotonic() - start
    client.done.set()
    client.join()
    for why in client.reasons:
        print(f"  a failed request: {why}", flush=True)
    dy("kube", "down", str(path))
    return ready, rollout, client.ok, client.failed


def plain_run(dy: Dockyard) -> float:
    start = time.monotonic()
    names = [f"plain-{i}" for i in range(5)]
    for name in names:
        dy("run", "-d", "--name", name, "--health-cmd", " ".join(PROBE), "--health-interval",
           "1s", "myapp:v1", "sh", "-c", WEB)

    def healthy() -> bool:
        out = dy("inspect", "--format", "{{.State.Health.Status}}", *names).stdout.split()
        return out == ["healthy"] * 5

    _wait("5 healthy containers", healthy)
    took = time.monotonic() - start
    dy("rm", "-f", *names)
    return took


def podman_run(dy: Dockyard, work: Path) -> str:
    """``podman kube play`` of the same file, the same images (saved by dockyard,
    loaded by podman into storage of its own under /tmp; ``--network none``, so it
    adds no bridge to the host), then ``--replace`` with the new tag: its only way
    to change a played file (everything torn down and made again)."""
    if shutil.which("podman") is None or shutil.which("catatonit") is None:
        return "podman: not installed (Debian packages podman, catatonit): no comparison"
    home = Path(tempfile.mkdtemp(prefix="dypm-"))  # its runroot: 50 characters at most
    conf = home / "containers.conf"  # this VM may not raise RLIMIT_NOFILE/NPROC
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", '
                    '"nproc=4096:4096"]\n')
    argv = ["podman", "--root", str(home / "storage"), "--runroot", str(home / "run"),
            "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def podman(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*argv, *args], env=env, capture_output=True, text=True,
                              timeout=300)

    try:
        for tag in ("v1", "v2"):
            dy("save", "-o", str(work / f"{tag}.tar"), f"myapp:{tag}")
            podman("load", "-i", str(work / f"{tag}.tar"))
        path = work / "podman.yaml"
        # without the containerPort: under --network none podman refuses port mappings
        text = DEPLOYMENT.read_text().replace("        ports:\n        - containerPort: 8080\n",
                                              "")
        path.write_text(text)
        start = time.monotonic()
        played = podman("kube", "play", "--network", "none", str(path))
        took = time.monotonic() - start
        running = len(podman("pod", "ps", "--filter", "status=running", "-q").stdout.split())
        path.write_text(text.replace("myapp:v1", "myapp:v2"))
        start = time.monotonic()
        replaced = podman("kube", "play", "--replace", "--network", "none", str(path))
        again = time.monotonic() - start
        podman("kube", "down", str(path))
        if played.returncode:
            print(f"  podman: {played.stderr.strip()[-300:]}")
        return (f"podman kube play: exit {played.returncode} in {took:.2f} s, {running} pods "
                f"running (no readiness wait, the Service ignored); the new tag by --replace "
                f"(every pod down, then up: no rolling update): exit {replaced.returncode} "
                f"in {again:.2f} s")
    finally:
        podman("system", "reset", "--force")
        unmount_under(home)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    exit_on_signals()
    with scratch_root("dockyard-bench-kube-") as (work, dy):
        dy.import_box(work)
        _build(dy, work, "v1")
        _build(dy, work, "v2")
        ready, rollout, plain, failed, asked = [], [], [], 0, 0
        for run in range(args.runs):  # interleaved: the two measured under the same load
            r, o, ok, bad = kube_run(dy, work)
            ready.append(r)
            rollout.append(o)
            failed += bad
            asked += ok + bad
            plain.append(plain_run(dy))
            print(f"run {run + 1}: 5 ready {r:.2f} s (plain runs {plain[-1]:.2f} s), "
                  f"rollout {o:.2f} s, {bad} failed of {ok + bad} requests", flush=True)
        median_ready, median_plain = statistics.median(ready), statistics.median(plain)
        print(f"kube play, 5 replicas ready: median {median_ready:.2f} s; 5 plain `run -d` "
              f"healthy: {median_plain:.2f} s; ratio {median_ready / median_plain:.2f}")
        print(f"rollout 5 → 5 (maxSurge 1, maxUnavailable 1): median "
              f"{statistics.median(rollout):.2f} s; failed requests {failed} of {asked}")
        print(podman_run(dy, work))


if __name__ == "__main__":
    main()
