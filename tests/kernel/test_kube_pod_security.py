"""`dockyard kube`: httpGet and sleep lifecycle handlers (postStart before play
returns, a failing one restarting its container; preStop before the stop signal, within the
grace period), and a pod's fsGroup on its volumes (emptyDir on disk and in memory, a
PersistentVolumeClaim, ConfigMap and Secret files) and in its processes' groups,
with fsGroupChangePolicy.

The hooks' HTTP server listens on 127.0.0.1 (the handlers name it as their host,
which the kubelet, too, reaches from the node)."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.cli import Dockyard, free_port
from dockyard.testing.poll import until
from tests.kernel.kube_support import kube_dy  # noqa: F401 (the `dy` fixture)
from tests.kernel.test_kube import _copy, _nothing_left
from tests.kernel.test_kube_kinds import _restarts

pytestmark = pytest.mark.root


class HookServer:
    """Records each GET (path, the X-Pod header, and whether ``marker`` existed when it
    came and when it was answered); /pre-stop is answered a second late."""

    def __init__(self, marker: Path) -> None:
        self.seen: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                entry = {"path": self.path, "pod": self.headers.get("X-Pod"),
                         "term_before": marker.exists()}
                if self.path == "/pre-stop":
                    threading.Event().wait(1)
                entry["term_after"] = marker.exists()
                outer.seen.append(entry)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


HOOKED = """\
apiVersion: v1
kind: Pod
metadata: {name: hooked}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: main
    image: box:1
    command: [sh, -c, "trap 'touch /out/term; exit 0' TERM; while true; do sleep 0.1; done"]
    lifecycle:
      postStart:
        httpGet: {host: 127.0.0.1, port: PORT, path: /post-start,
                  httpHeaders: [{name: X-Pod, value: hooked}]}
      preStop:
        httpGet: {host: 127.0.0.1, port: PORT, path: /pre-stop}
    volumeMounts: [{name: out, mountPath: /out}]
  - name: side
    image: box:1
    command: [sh, -c, "trap 'touch /out/side-term; exit 0' TERM; while true; do sleep 0.1;
              done"]
    lifecycle:
      preStop: {sleep: {seconds: 1}}
    volumeMounts: [{name: out, mountPath: /out}]
  volumes:
  - {name: out, hostPath: {path: OUT, type: DirectoryOrCreate}}
"""


def test_http_lifecycle_handlers(dy: Dockyard) -> None:
    out = dy.root.parent / "hook-out"
    server = HookServer(out / "term")
    try:
        path = _copy(dy, "hooked.yaml", HOOKED.replace("PORT", str(server.port)).replace(
            "OUT", str(out)))
        dy("kube", "play", "-d", str(path))
        # postStart ran once the container started, before play returned
        assert server.seen == [{"path": "/post-start", "pod": "hooked", "term_before": False,
                                "term_after": False}]
        dy("kube", "down", str(path))
        # preStop ran while the container ran on, and only then came its stop signal
        # (which its trap saw: a stop, not a kill); the side container's sleep handler
        assert server.seen[1] == {"path": "/pre-stop", "pod": None, "term_before": False,
                                  "term_after": False}
        assert (out / "term").exists() and (out / "side-term").exists()
        _nothing_left(dy)
        # a postStart handler that finds nobody listening: its container is killed
        # and restarted in the pod (restartPolicy Always), as the kubelet does
        broken = _copy(dy, "hooked.yaml", HOOKED.replace("PORT", str(free_port())).replace(
            "OUT", str(out)))
        told = dy("kube", "play", "-d", str(broken)).stdout
        assert "pod hooked: postStart hook of hooked-main failed: GET http://127.0.0.1:" in (
            told) and "Connection refused" in told
        until("main restarted", lambda: _restarts(dy, "hooked", "main") >= 1, timeout=30)
        assert _restarts(dy, "hooked", "side") == 0
        dy("kube", "down", str(broken))
        _nothing_left(dy)
    finally:
        server.close()


GROUPED = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: token}
stringData: {token: s3cret}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: claim}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: grouped}
spec:
  securityContext: {runAsUser: 1000, fsGroup: 2000, supplementalGroups: [3000]POLICY}
  containers:
  - name: main
    image: box:1
    command: [sh, -c, "touch /data/new /scratch/new /mem/new && exec sleep 300"]
    volumeMounts:
    - {name: data, mountPath: /data}
    - {name: scratch, mountPath: /scratch}
    - {name: mem, mountPath: /mem}
    - {name: settings, mountPath: /settings}
    - {name: token, mountPath: /token}
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: claim}}
  - {name: scratch, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory}}
  - {name: settings, configMap: {name: settings}}
  - {name: token, secret: {secretName: token}}
"""


def _stat(dy: Dockyard, *paths: str) -> list[str]:
    out = dy("exec", "grouped-main", "stat", "-c", "%u %g %a", *paths).stdout
    return out.splitlines()


def test_fs_group_owns_the_pods_volumes(dy: Dockyard) -> None:
    # the claim's volume exists already, its top the group's, a file in it not
    dy("volume", "create", "claim")
    data = dy.root / "volumes" / "claim" / "_data"
    (data / "old").write_text("kept")
    os.chown(data, 0, 2000)
    os.chmod(data, 0o2775)
    path = _copy(dy, "grouped.yaml", GROUPED.replace(
        "POLICY", ", fsGroupChangePolicy: OnRootMismatch"))
    dy("kube", "play", "-d", str(path))
    status = dy("exec", "grouped-main", "cat", "/proc/1/status").stdout
    groups = next(line for line in status.splitlines() if line.startswith("Groups:"))
    assert {"2000", "3000"} <= set(groups.split()[1:])  # fsGroup, supplementalGroups
    # uid 1000 wrote into each volume (the group may), and what it made is the group's
    assert _stat(dy, "/data/new", "/scratch/new", "/mem/new") == ["1000 2000 644"] * 3
    assert _stat(dy, "/data", "/scratch", "/mem") == [
        "0 2000 2775", "0 2000 2775", "0 2000 2777"]
    assert _stat(dy, "/settings", "/settings/mode", "/token/token") == [
        "0 2000 2755", "0 2000 644", "0 2000 644"]
    assert dy("exec", "grouped-main", "cat", "/token/token").stdout == "s3cret"
    # OnRootMismatch: the top matched, so the tree was left as it was
    assert _stat(dy, "/data/old") == ["0 0 644"]
    dy("kube", "down", str(path))
    # Always (the default): the whole tree, every time a pod starts
    _copy(dy, "grouped.yaml", GROUPED.replace("POLICY", ""))
    dy("kube", "play", "-d", str(path))
    assert _stat(dy, "/data/old", "/data/new") == ["0 2000 664", "1000 2000 664"]
    dy("kube", "down", str(path))
    dy("volume", "rm", "claim")
    _nothing_left(dy)
