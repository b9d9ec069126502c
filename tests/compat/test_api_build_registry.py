"""``POST /build``, push/pull with ``X-Registry-Auth``, ``/auth`` and ``/distribution``
through ``dockyard serve``, driven by the real docker CLI (legacy builder) and docker-py
against Debian's docker-registry on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.apiserver import ApiServer
from dockyard.testing.cli import Dockyard
from tests.compat.conftest import Registry

pytestmark = pytest.mark.root

DOCKERFILE = """\
FROM box:1 AS base
ARG GREETING=hello
RUN echo "$GREETING" > /greeting && echo "built the greeting"
FROM box:1
LABEL stage=final
COPY --from=base /greeting /greeting
COPY file.txt /file.txt
CMD ["cat", "/greeting", "/file.txt"]
"""


@pytest.fixture(autouse=True)
def _docker_cli() -> None:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed (Debian package docker.io)")


@pytest.fixture
def legacy(api: ApiServer) -> ApiServer:
    """The server with the docker CLI set to its legacy builder (no BuildKit session)."""
    return api._replace(env={**api.env, "DOCKER_BUILDKIT": "0"})


@pytest.fixture
def context(tmp_path: Path) -> Path:
    directory = tmp_path / "ctx"
    directory.mkdir()
    (directory / "Dockerfile").write_text(DOCKERFILE)
    (directory / "file.txt").write_text("from the context\n")
    (directory / "ignored.txt").write_text("secret\n")
    (directory / ".dockerignore").write_text("ignored.txt\n")
    return directory


def test_docker_build_multi_stage(legacy: ApiServer, box: Dockyard, context: Path,
                                  tmp_path: Path) -> None:
    built_id = tmp_path / "built-id"
    built = legacy.docker("build", "-t", "built:1", "-t", "built:2", "--build-arg",
                          "GREETING=hi there", "--label", "team=a", "--iidfile",
                          str(built_id), str(context))
    out = built.stdout
    assert "Step 3/3 (base) : RUN echo" in out and "\nbuilt the greeting\n" in out
    assert "Successfully built " in out
    assert "Successfully tagged built:1\n" in out and "Successfully tagged built:2\n" in out
    short = out.split("Successfully built ")[1].split()[0]
    assert built_id.read_text().startswith(f"sha256:{short}")  # from the aux message
    assert legacy.docker("run", "--rm", "built:1").stdout == "hi there\nfrom the context\n"
    # the same image in dockyard's own store and CLI
    assert box("images", "-q", "built:2").stdout.strip() == short
    inspected = json.loads(box("inspect", "built:1").stdout)[0]
    assert inspected["Config"]["Labels"] == {"stage": "final", "team": "a"}
    # the same cache as `dockyard build`: nothing runs again
    again = legacy.docker("build", "-t", "built:1", "--build-arg", "GREETING=hi there",
                          "--label", "team=a", str(context))
    assert "Using cache" in again.stdout and "\nbuilt the greeting\n" not in again.stdout
    assert f"Successfully built {short}" in again.stdout
    # `dockyard build` of the same context: the same cache, the same image
    cli = box("build", "--progress", "plain", "--build-arg", "GREETING=hi there", "--label",
              "team=a", "-t", "cli:1", str(context))
    assert "CACHED" in cli.stderr
    assert re.search(r"^#\d+ [\d.]+ built the greeting$", cli.stderr, re.M) is None
    assert cli.stdout.strip() == built_id.read_text().strip()
    # -q and --iidfile read the aux ID; --target builds the named stage
    iidfile = tmp_path / "iid"
    quiet = legacy.docker("build", "-q", "--iidfile", str(iidfile), "--target", "base",
                          str(context))
    assert quiet.stdout.strip() == iidfile.read_text().strip()
    assert legacy.docker("run", "--rm", iidfile.read_text().strip(), "cat",
                         "/greeting").stdout == "hello\n"
    # .dockerignore honoured, a Dockerfile from outside the context (sent in the tar)
    outside = tmp_path / "Other.Dockerfile"
    outside.write_text("FROM box:1\nCOPY . /ctx\nRUN ls /ctx\n")
    listed = legacy.docker("build", "--no-cache", "-f", str(outside), "-t", "other:1",
                           str(context))
    assert "file.txt" in listed.stdout and "ignored.txt" not in listed.stdout


def test_docker_build_failures(legacy: ApiServer, box: Dockyard, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM box:1\nRUN echo before; exit 3\n")
    failed = legacy.docker("build", "-t", "broken:1", str(tmp_path), check=False)
    assert failed.returncode != 0
    assert "before" in failed.stdout
    assert "exit 3" in failed.stderr or "code" in failed.stderr, failed.stderr
    (tmp_path / "Dockerfile").write_text("FROM nosuch:1\n")
    missing = legacy.docker("build", str(tmp_path), check=False)
    assert missing.returncode != 0 and "nosuch" in missing.stderr
    assert box("images", "--format", "{{.Repository}}").stdout.split() == ["box"]


def test_docker_py_build(api: ApiServer, context: Path) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=api.url, timeout=120)
    try:
        image, logs = client.images.build(path=str(context), tag="py:1",
                                          buildargs={"GREETING": "from py"},
                                          labels={"by": "docker-py"}, rm=True, forcerm=True)
        lines = [entry.get("stream", "") for entry in logs]
        assert any(line.startswith("Successfully built ") for line in lines)
        assert "py:1" in image.tags and image.labels["by"] == "docker-py"
        assert client.containers.run("py:1", remove=True) == b"from py\nfrom the context\n"
        zipped, _ = client.images.build(path=str(context), gzip=True, target="base",
                                        nocache=True)  # a compressed context
        assert client.containers.run(zipped.id, ["cat", "/greeting"], remove=True) == \
            b"hello\n"
        with pytest.raises(docker.errors.BuildError, match="returned|exit|code"):
            client.images.build(fileobj=_tar({"Dockerfile": "FROM box:1\nRUN exit 4\n"}),
                                custom_context=True)
        with pytest.raises(docker.errors.APIError):
            client.images.build(path=str(context), dockerfile="Nope")
    finally:
        client.close()


def _tar(files: dict[str, str]) -> Any:
    import io
    import tarfile

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
    data.seek(0)
    return data


def test_docker_login_push_pull_with_registry_auth(api: ApiServer, box: Dockyard,
                                                   auth_registry: Registry,
                                                   tmp_path: Path) -> None:
    host = auth_registry.address
    wrong = api.docker("login", host, "-u", "alice", "--password-stdin", input=b"nope\n",
                       check=False)
    assert wrong.returncode != 0 and "401" in wrong.stderr, wrong.stderr
    assert not (Path(api.env["DOCKER_CONFIG"]) / "config.json").exists() or \
        host not in (Path(api.env["DOCKER_CONFIG"]) / "config.json").read_text()
    logged = api.docker("login", host, "-u", "alice", "--password-stdin", input=b"s3cret\n")
    assert "Login Succeeded" in logged.stdout
    image = f"{host}/team/box:v1"
    api.docker("tag", "box:1", image)
    pushed = api.docker("push", image)
    assert f"The push refers to repository [{host}/team/box]" in pushed.stdout
    assert "v1: digest: sha256:" in pushed.stdout
    api.docker("rmi", image)
    pulled = api.docker("pull", image)
    assert "Downloaded newer image" in pulled.stdout or "Image is up to date" in pulled.stdout
    assert api.docker("run", "--rm", image, "echo", "pulled").stdout == "pulled\n"
    # a build pulls its base with the credentials of X-Registry-Config
    api.docker("rmi", image)
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "Dockerfile").write_text(f"FROM {image}\nRUN echo on the base\n")
    legacy = api._replace(env={**api.env, "DOCKER_BUILDKIT": "0"})
    based = legacy.docker("build", "--pull", "-t", "onbase:1", str(tmp_path / "base"))
    assert "on the base" in based.stdout
    # the server stores no credentials: without the client's, the registry says no
    api.docker("logout", host)
    refused = api.docker("push", image, check=False)
    assert refused.returncode != 0 and "authentication required" in \
        (refused.stdout + refused.stderr), refused.stderr
    assert not (box.root.parent / "docker-config" / "config.json").exists()


def test_docker_py_push_pull_login_and_distribution(api: ApiServer,
                                                    auth_registry: Registry) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=api.url, timeout=120)
    host = auth_registry.address
    good = {"username": "alice", "password": "s3cret"}
    try:
        assert client.login("alice", "s3cret", registry=f"http://{host}",
                            reauth=True)["Status"] == "Login Succeeded"
        with pytest.raises(docker.errors.APIError) as refused:
            client.login("alice", "wrong", registry=host, reauth=True)
        assert refused.value.status_code == 401
        client.images.get("box:1").tag(f"{host}/py/box", "v2")
        lines = list(client.images.push(f"{host}/py/box", "v2", auth_config=good,
                                        stream=True, decode=True))
        assert not [line for line in lines if "error" in line], lines
        assert any(line.get("aux", {}).get("Tag") == "v2" for line in lines)
        data = client.images.get_registry_data(f"{host}/py/box:v2", auth_config=good)
        assert data.id.startswith("sha256:") and data.has_platform("linux")
        client.images.remove(f"{host}/py/box:v2")
        pulled = client.images.pull(f"{host}/py/box", "v2", auth_config=good)
        assert f"{host}/py/box:v2" in pulled.tags
        fresh = docker.DockerClient(base_url=api.url, timeout=120)  # no login remembered
        with pytest.raises(docker.errors.APIError, match="authentication required"):
            fresh.images.get_registry_data(f"{host}/py/box:v2")
        fresh.close()
    finally:
        client.close()
