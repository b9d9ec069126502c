"""Docker Compose v2 and testcontainers-python through ``dockyard serve``: the tools
people already use, unchanged, with DOCKER_HOST pointing at dockyard."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from dockyard.testing.apiserver import ApiServer
from dockyard.testing.cli import Dockyard, free_port
from dockyard.testing.poll import until
from tests.compat.test_compose_docker import _compose_binary

pytestmark = pytest.mark.root

COMPOSE = """\
services:
  db:
    image: box:1
    init: true
    command: ["sh", "-c", "echo stored > /data/value && echo db up && exec sleep 300"]
    volumes: [data:/data]
    networks: [back]
    healthcheck:
      test: ["CMD", "test", "-f", "/data/value"]
      interval: 200ms
      retries: 50
  web:
    build: ./web
    init: true
    ports: ["127.0.0.1:{port}:8080"]
    networks: [back]
    depends_on:
      db:
        condition: service_healthy
  worker:
    image: box:1
    init: true
    command: ["sh", "-c", "echo worker up && exec sleep 300"]
    networks: [back]
    depends_on: [web]
networks:
  back: {{}}
volumes:
  data: {{}}
"""


def _compose(api: ApiServer, project: Path, *args: str,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**api.env, "DOCKER_BUILDKIT": "0", "COMPOSE_BAKE": "false",
           "COMPOSE_PROJECT_NAME": "dyapi"}
    result = subprocess.run([_compose_binary(), "--project-directory", str(project), *args],
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_docker_compose_up_ps_logs_exec_down(api: ApiServer, box: Dockyard,
                                             tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "web").mkdir(parents=True)
    port = free_port()
    (project / "compose.yaml").write_text(COMPOSE.format(port=port))
    (project / "web" / "Dockerfile").write_text(
        'FROM box:1\nRUN mkdir /www && echo "hello from web" > /www/index.html\n'
        'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n')
    try:
        _compose(api, project, "up", "-d")
        rows = [json.loads(line) for line in
                _compose(api, project, "ps", "--format", "json").stdout.splitlines()]
        assert {(r["Service"], r["State"]) for r in rows} == \
            {("db", "running"), ("web", "running"), ("worker", "running")}
        assert "(healthy)" in next(r["Status"] for r in rows if r["Service"] == "db")
        until("the web server", lambda: _get(port) == "hello from web\n")
        until("the worker's log", lambda: "worker up" in _compose(api, project, "logs",
                                                                  "worker").stdout)
        assert _compose(api, project, "exec", "-T", "db", "cat", "/data/value").stdout == \
            "stored\n"
        # compose's resources are dockyard's: its CLI sees them
        assert sorted(box("ps", "--format", "{{.Names}}").stdout.split()) == \
            ["dyapi-db-1", "dyapi-web-1", "dyapi-worker-1"]
        assert "dyapi_data" in box("volume", "ls", "-q").stdout.split()
        assert "dyapi_back" in box("network", "ls", "--format", "{{.Name}}").stdout.split()
    finally:
        _compose(api, project, "down", "-v", "-t", "1")
    assert box("ps", "-a", "-q").stdout == ""
    assert "dyapi_data" not in box("volume", "ls", "-q").stdout.split()
    assert "dyapi_back" not in box("network", "ls", "--format", "{{.Name}}").stdout.split()


def _get(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
    except httpx.HTTPError:
        return ""


def test_testcontainers_docker_container(api: ApiServer, box: Dockyard, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "Dockerfile").write_text(
        'FROM box:1\nRUN mkdir /www && echo "hello testcontainers" > /www/index.html\n'
        'CMD ["sh", "-c", "echo serving; exec httpd -f -p 8080 -h /www"]\n')
    box("build", "-q", "-t", "tc-web:1", str(tmp_path))
    for key, value in {"DOCKER_HOST": api.url, "TESTCONTAINERS_RYUK_DISABLED": "true",
                       "TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1",
                       "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
                       "DOCKER_CONFIG": api.env["DOCKER_CONFIG"]}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    pytest.importorskip("testcontainers")  # its settings are read from the environment
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    container = DockerContainer("tc-web:1").with_exposed_ports(8080).waiting_for(
        LogMessageWaitStrategy("serving").with_startup_timeout(30))
    with container:
        port = int(container.get_exposed_port(8080))
        until("the container's server", lambda: _get(port) == "hello testcontainers\n")
        assert container.get_container_host_ip() == "127.0.0.1"
        running = box("ps", "--format", "{{.Image}}").stdout.split()
        assert running == ["tc-web:1"]
    assert box("ps", "-a", "-q").stdout == ""  # stopped and removed
    assert os.environ["DOCKER_HOST"] == api.url


def test_docker_py_resize_and_search(api: ApiServer) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=api.url, timeout=120)
    try:
        container = client.containers.run("box:1", ["sleep", "60"], detach=True, tty=True)
        container.resize(height=33, width=111)
        size = container.exec_run(["stty", "-F", "/dev/console", "size"])
        assert (size.exit_code, size.output) == (0, b"33 111\n")
        with pytest.raises(docker.errors.APIError) as refused:
            container.resize(height=0, width=80)
        assert refused.value.status_code == 400
        container.remove(force=True)
        with pytest.raises(docker.errors.NotFound):
            container.resize(height=20, width=80)
        assert client.images.search("busybox") == []  # no index to search here
    finally:
        client.close()
