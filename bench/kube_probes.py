"""How long a pod's readiness takes to follow its probe while another pod's exec probe
is slow: one pod whose exec livenessProbe takes 3 s (run by the controller: its
exec readinessProbe is the healthcheck), another whose httpGet readinessProbe
(periodSeconds 1) is flipped on and off; each flip timed until `kube get` says so.

    python bench/kube_probes.py [--flips 6]     (as root)

Run it with PYTHONPATH pointing at another tree to compare two versions under the
same load (the kubelet's target: within periodSeconds)."""

from __future__ import annotations

import argparse
import json
import statistics
import time

from engines import exit_on_signals

from dockyard.testing.cli import Dockyard, scratch_root

PODS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: slow}
spec:
  replicas: 1
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}}
    spec:
      containers:
      - name: main
        image: box:1
        command: [sleep, "3000"]
        readinessProbe: {exec: {command: ["true"]}, periodSeconds: 1}
        livenessProbe:
          exec: {command: [sleep, "3"]}
          timeoutSeconds: 10
          periodSeconds: 1
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: quick}
spec:
  replicas: 1
  selector: {matchLabels: {app: quick}}
  template:
    metadata: {labels: {app: quick}}
    spec:
      containers:
      - name: main
        image: box:1
        command: [sh, -c, "mkdir -p /www && exec httpd -f -p 8080 -h /www"]
        readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1}
"""


def _ready(dy: Dockyard) -> int:
    doc = json.loads(dy("kube", "get", "deploy", "quick", "-o", "json").stdout)
    return int(doc["status"].get("readyReplicas") or 0)


def _flip(dy: Dockyard, pod: str, want: int) -> float:
    dy("exec", f"{pod}-main", *(("touch",) if want else ("rm",)), "/www/ready")
    began = time.monotonic()
    while _ready(dy) != want:
        if time.monotonic() - began > 60:
            raise SystemExit("readiness did not follow in 60 s")
        time.sleep(0.05)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flips", type=int, default=6)
    args = parser.parse_args()
    exit_on_signals()
    with scratch_root("dockyard-bench-kube-probes-") as (work, dy):
        dy.import_box(work)
        path = work / "pods.yaml"
        path.write_text(PODS)
        dy("kube", "play", "-d", str(path))
        try:
            pod = dy("ps", "--filter", "label=io.dockyard.kube.owner=default.Deployment.quick",
                     "--filter", "label=io.dockyard.kube.role=infra", "--format",
                     "{{.Names}}").stdout.split()[0]
            time.sleep(5)  # the slow probe under way
            flips = [_flip(dy, pod, (i + 1) % 2) for i in range(args.flips)]
        finally:
            dy("kube", "down", str(path))
    print(f"readiness flips (periodSeconds 1) beside a 3 s exec probe: median "
          f"{statistics.median(flips):.2f}s, max {max(flips):.2f}s "
          f"({', '.join(f'{f:.2f}' for f in flips)})")


if __name__ == "__main__":
    main()
