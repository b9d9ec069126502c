"""The same files under `podman kube play` (Podman 4.3, Debian's `podman` with
`catatonit`; skipped without them) and `dockyard kube play`, side by side, showing
what each does: a Deployment of 3 replicas behind a Service, one pod killed, and a
Job.  Podman runs with its own storage under the test's directory and `--network
none`, so it adds no bridge or iptables chain to this host (it would leave them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import Dockyard, unmount_under
from dockyard.testing.poll import until
from tests.kernel.test_kube import _address, _http, _nothing_left, _pods

pytestmark = pytest.mark.root

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: box:1
        command: [sh, -c, "mkdir -p /www && echo $HOSTNAME > /www/index.html
                  && exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""

JOB = """\
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: step, image: box:1, command: [sh, -c, "echo done"]}
"""


class Podman:
    def __init__(self, work: Path) -> None:
        self.argv = ["podman", "--root", str(work / "storage"), "--runroot",
                     str(work / "run"), "--cgroup-manager", "cgroupfs", "--events-backend",
                     "file"]
        work.mkdir(parents=True, exist_ok=True)
        conf = work / "containers.conf"  # this VM may not raise RLIMIT_NOFILE past 20000
        conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*self.argv, *args], env=self.env, capture_output=True,
                              text=True, timeout=120)
        assert not check or done.returncode == 0, f"podman {args[0]}: {done.stderr}"
        return done

    def running_pods(self) -> list[str]:
        out = self("pod", "ps", "--filter", "status=running", "--format", "{{.Name}}").stdout
        return sorted(out.split())


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    if shutil.which("podman") is None or shutil.which("catatonit") is None:
        pytest.skip("podman is not installed (Debian packages podman and catatonit)")
    work = Path(tempfile.mkdtemp(prefix="dypm-"))  # podman's runroot: 50 characters at most
    peer = Podman(work)
    (tmp_path / "podman-rootfs").mkdir()
    tar = make_rootfs_tar(tmp_path / "podman-rootfs")
    peer("import", "--change", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", str(tar), "box:1")
    try:
        yield peer
    finally:
        peer("system", "reset", "--force", check=False)  # its containers, mounts, storage
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)


def test_the_same_files_under_podman_and_dockyard(box: Dockyard, podman: Podman,
                                                  tmp_path: Path) -> None:
    deploy, job = tmp_path / "deploy.yaml", tmp_path / "job.yaml"
    deploy.write_text(DEPLOY)
    job.write_text(JOB)
    seen: dict[str, list[str]] = {"podman": [], "dockyard": []}
    # podman: pods, no Service (nothing answers for it), no controller
    played = podman("kube", "play", "--network", "none", str(deploy), check=False)
    pods = podman.running_pods()
    assert pods, played.stderr
    names = podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    seen["podman"].append(f"play: exit {played.returncode}, {len(pods)} pods running, "
                          f"Service: {'made' if any('svc' in n for n in names) else 'ignored'}")
    podman("pod", "kill", pods[0])
    time.sleep(3)
    after = podman.running_pods()
    seen["podman"].append(f"one pod killed: {len(after)} running 3 s later")
    refused = podman("kube", "play", "--network", "none", str(job), check=False)
    seen["podman"].append(f"Job: exit {refused.returncode}: {refused.stderr.strip()}")
    podman("kube", "down", str(deploy), check=False)
    # dockyard: the replicas behind a Service that answers, a killed pod replaced, the Job run
    box("kube", "play", "-d", str(deploy))
    ours = _pods(box, "default.Deployment.web")
    answer = until("the Service", lambda: _http(_address(box, "svc-default-web"), 80))
    seen["dockyard"].append(f"play: {len(ours)} pods running, Service answers ({answer})")
    box("kill", ours[0])
    until("a replacement", lambda: len(_pods(box, "default.Deployment.web")) == 3 and ours[0]
          not in _pods(box, "default.Deployment.web"), timeout=30)
    seen["dockyard"].append("one pod killed: replaced, 3 running")
    box("kube", "play", "-d", str(job))
    until("the Job", lambda: "Complete" in box("kube", "get", "job", "batch").stdout,
          timeout=60)
    seen["dockyard"].append("Job: 2/2 completions, Complete")
    for engine, lines in seen.items():
        print(f"{engine}:", *lines, sep="\n  ")
    assert played.returncode == 0 and len(pods) == 3 and len(after) == 2
    assert refused.returncode == 125
    assert "does not contain any supported kube kind" in refused.stderr
    box("kube", "down", str(deploy))
    box("kube", "down", str(job))
    _nothing_left(box)
