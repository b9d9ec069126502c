"""`dockyard kube apply` against a recording HTTP server on 127.0.0.1 (no cluster can
run here): the official `kubernetes` client's requests — kubeconfig context and
namespace as kubectl reads them, a server-side dry run of everything first, then
server-side apply (PATCH, application/apply-patch+yaml, fieldManager=dockyard) —
and the local image pushed to a real registry (docker-registry on 127.0.0.1) and
referenced by its digest."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from dockyard.testing.cli import Dockyard
from tests.compat.conftest import Registry

pytestmark = pytest.mark.root


class Seen(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


class Recorder(ThreadingHTTPServer):
    seen: list[Seen]
    refuse: str  # a path part the server answers 422 for


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_PATCH(self) -> None:  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(Seen("PATCH", url.path, dict(parse_qsl(url.query)),
                                     {k.lower(): v for k, v in self.headers.items()}, body))
        if self.server.refuse and self.server.refuse in url.path:
            status, answer = 422, {"kind": "Status", "status": "Failure", "code": 422,
                                   "message": 'Service "bad" is invalid: spec.ports: Required'}
        else:
            status, answer = 200, body
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def cluster() -> Iterator[Recorder]:
    server = Recorder(("127.0.0.1", 0), Handler)
    server.seen, server.refuse = [], ""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _kubeconfig(tmp: Path, port: int) -> Path:
    path = tmp / "kubeconfig"
    path.write_text(f"""\
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: local
  cluster: {{server: "http://127.0.0.1:{port}"}}
users:
- name: dev-user
  user: {{token: dev-token}}
- name: prod-user
  user: {{token: prod-token}}
contexts:
- name: dev
  context: {{cluster: local, user: dev-user, namespace: team-dev}}
- name: prod
  context: {{cluster: local, user: prod-user, namespace: team-prod}}
""")
    return path


APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
      - {name: prep, image: "nginx:1.27", command: ["true"]}
      containers:
      - {name: web, image: "box:1", command: [httpd, -f]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Namespace
metadata: {name: extra}
"""


def test_apply_pushes_then_server_side_applies(box: Dockyard, registry: Registry,
                                                cluster: Recorder, tmp_path: Path) -> None:
    config = _kubeconfig(tmp_path, cluster.server_address[1])
    app = tmp_path / "app.yaml"
    app.write_text(APP)
    env = {**box.env, "KUBECONFIG": str(config)}
    out = box("kube", "apply", "-f", str(app), "--context", "prod", "--push-to",
              registry.address, env=env).stdout
    pushed = f"{registry.address}/box@sha256:"
    assert f"pushed box:1 as {pushed}" in out
    assert out.splitlines()[-3:] == ["namespace/extra serverside-applied",
                                     "deployment/web serverside-applied",
                                     "service/web serverside-applied"]
    dry, real = cluster.seen[:3], cluster.seen[3:]
    assert all(s.query.get("dryRun") == "All" for s in dry) and len(real) == 3
    assert [s.path for s in real] == ["/api/v1/namespaces/extra",
                                      "/apis/apps/v1/namespaces/team-prod/deployments/web",
                                      "/api/v1/namespaces/team-prod/services/web"]
    for seen in cluster.seen:
        assert seen.query["fieldManager"] == "dockyard" and seen.query["force"] == "true"
        assert seen.headers["content-type"] == "application/apply-patch+yaml"
        assert seen.headers["authorization"] == "Bearer prod-token"
    pod = real[1].body["spec"]["template"]["spec"]
    image = pod["containers"][0]["image"]
    assert image.startswith(pushed)
    assert pod["initContainers"][0]["image"] == "nginx:1.27"  # not here: left alone
    manifest = httpx.get(f"http://{registry.address}/v2/box/manifests/{image.split('@')[1]}",
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                  "application/vnd.docker.distribution.manifest.v2+json"})
    assert manifest.status_code == 200
    # the current context, and its namespace, without --context
    cluster.seen.clear()
    box("kube", "apply", "-f", str(app), env=env)
    assert cluster.seen[-1].path == "/api/v1/namespaces/team-dev/services/web"
    assert cluster.seen[-1].headers["authorization"] == "Bearer dev-token"
    assert cluster.seen[-1].body["spec"]["selector"] == {"app": "web"}


def test_apply_refused_by_the_dry_run_applies_nothing(box: Dockyard, cluster: Recorder,
                                                     tmp_path: Path) -> None:
    env = {**box.env, "KUBECONFIG": str(_kubeconfig(tmp_path, cluster.server_address[1]))}
    app = tmp_path / "app.yaml"
    app.write_text(APP.replace("metadata: {name: web}\nspec:\n  selector",
                               "metadata: {name: bad}\nspec:\n  selector"))
    cluster.refuse = "/services/bad"
    result = box("kube", "apply", "-f", str(app), env=env, check=False)
    assert result.returncode != 0
    assert ('service/bad: Service "bad" is invalid: spec.ports: Required (dry run: nothing '
            "was applied)") in result.stderr
    assert cluster.seen and all(s.query.get("dryRun") == "All" for s in cluster.seen)
    # a context that is not there, and input that is not Kubernetes, say so
    result = box("kube", "apply", "-f", str(app), "--context", "nope", env=env, check=False)
    assert 'context "nope" does not exist' in result.stderr
    app.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: 3}\n")
    result = box("kube", "apply", "-f", str(app), env=env, check=False)
    assert "Service/s (" in result.stderr and "spec.ports" in result.stderr


def test_generate_pin_prefers_the_repo_digest_of_a_push(box: Dockyard,
                                                       registry: Registry) -> None:
    import yaml

    name = f"{registry.address}/team/box"
    box("tag", "box:1", f"{name}:1")
    pushed = box("push", f"{name}:1").stdout.splitlines()[-1].split("digest: ")[1].split()[0]
    box("run", "-d", "--name", "pinme", f"{name}:1", "sleep", "30")
    box("run", "-d", "--name", "local", "box:1", "sleep", "30")
    docs = list(yaml.safe_load_all(box("kube", "generate", "--pin", "pinme", "local").stdout))
    images = [d["spec"]["template"]["spec"]["containers"][0]["image"] for d in docs]
    assert images[0] == f"{name}@{pushed}"  # what the registry has
    # box:1 was never pushed under its own name: its local manifest digest, which
    # differs (the push compressed the imported layer)
    assert images[1].startswith("box@sha256:") and images[1] != f"box@{pushed}"
    box("rm", "-f", "pinme", "local")
