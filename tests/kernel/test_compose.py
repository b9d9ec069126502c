"""``dockyard compose`` for real: the three-service app of tests/data/compose/app (web ->
api -> store, a one-shot seed, healthchecks and every depends_on condition), converge,
scale, orphans, a dependency that never becomes healthy, and bad input that creates
nothing."""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard import __version__
from dockyard.testing.cli import Dockyard, free_port

pytestmark = pytest.mark.root

DATA = Path(__file__).parent.parent / "data" / "compose"
PREDEFINED = {"bridge", "host", "none"}


@pytest.fixture
def app(box: Dockyard, tmp_path: Path) -> Iterator[Path]:
    """A copy of the app corpus (so a test may edit it); its project is taken down."""
    folder = tmp_path / "app"
    shutil.copytree(DATA / "app", folder)
    yield folder
    box("compose", "-f", str(folder / "compose.yaml"), "down", "-v", "--remove-orphans",
        check=False)


def _inspect(box: Dockyard, *names: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = json.loads(box("inspect", *names).stdout)
    return docs


def _ids(box: Dockyard, compose: list[str]) -> dict[str, str]:
    rows = [json.loads(line) for line in
            box(*compose, "ps", "-a", "--format", "json").stdout.splitlines()]
    return {row["Name"]: row["ID"] for row in rows}


def _networks(box: Dockyard) -> set[str]:
    return set(box("network", "ls", "--format", "{{.Name}}").stdout.split()) - PREDEFINED


def _volumes(box: Dockyard) -> set[str]:
    return set(box("volume", "ls", "-q").stdout.split())


def test_app_up_converge_and_down(box: Dockyard, app: Path) -> None:
    compose = ["compose", "-f", str(app / "compose.yaml")]
    port = free_port()
    env = {"WEB_PORT": str(port)}
    up = box(*compose, "up", "-d", env=env)
    names = {"app-store-1", "app-seed-1", "app-api-1", "app-web-1"}
    first = _ids(box, compose)
    assert set(first) == names

    docs = {d["Name"].lstrip("/"): d for d in _inspect(box, *sorted(names))}
    for name, doc in docs.items():
        labels = doc["Config"]["Labels"]
        service = name.split("-")[1]
        assert labels["com.docker.compose.project"] == "app"
        assert labels["com.docker.compose.service"] == service
        assert labels["com.docker.compose.container-number"] == "1"
        assert labels["com.docker.compose.oneoff"] == "False"
        assert labels["com.docker.compose.project.working_dir"] == str(app)
        assert labels["com.docker.compose.project.config_files"] == str(app / "compose.yaml")
        assert len(labels["com.docker.compose.config-hash"]) == 64
    assert docs["app-store-1"]["Config"]["Labels"]["tier"] == "storage"
    assert docs["app-seed-1"]["State"]["Status"] == "exited"
    assert docs["app-seed-1"]["State"]["ExitCode"] == 0
    assert all(docs[n]["State"]["Running"] for n in names - {"app-seed-1"})
    assert docs["app-store-1"]["State"]["Health"]["Status"] == "healthy"

    # start order: store (healthy) -> seed (done) -> api -> web
    started = {n: docs[n]["State"]["StartedAt"] for n in names}
    assert started["app-store-1"] < started["app-seed-1"] < started["app-api-1"] \
        < started["app-web-1"]
    assert docs["app-seed-1"]["State"]["FinishedAt"] <= started["app-api-1"]
    order = [line.split()[1] for line in up.stderr.splitlines() if line.strip().endswith(
        "Starting")]
    assert order == ["app-store-1", "app-seed-1", "app-api-1", "app-web-1"]

    # networks, volumes and what flows through them: .env's GREETING, written by seed
    # into the volume, served by store on `back`, fetched by api's healthcheck by name
    assert _networks(box) == {"app_front", "app_back"}
    net = json.loads(box("network", "inspect", "app_back").stdout)[0]
    assert len(net["Labels"].pop("com.docker.compose.config-hash")) == 64
    assert net["Labels"] == {"com.docker.compose.project": "app",
                             "com.docker.compose.network": "back",
                             "com.docker.compose.version": __version__}
    assert _volumes(box) == {"app_storedata"}
    volume = json.loads(box("volume", "inspect", "app_storedata").stdout)[0]
    assert len(volume["Labels"].pop("com.docker.compose.config-hash")) == 64
    assert volume["Labels"] == {"com.docker.compose.project": "app",
                                "com.docker.compose.volume": "storedata",
                                "com.docker.compose.version": __version__}
    assert box("exec", "app-api-1", "cat", "/www/index.html").stdout == "hello from store\n"
    assert "API_MODE=slow" in docs["app-api-1"]["Config"]["Env"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/etc/hostname", timeout=10) as r:
        assert r.status == 200
    logs = box(*compose, "logs", "seed").stdout
    assert logs.splitlines() == ["app-seed-1  | seeded"]

    # a second `up` changes nothing
    box(*compose, "up", "-d", env=env)
    assert _ids(box, compose) == first

    # an edited service is recreated, and so is what depends on it; nothing else
    text = (app / "compose.yaml").read_text()
    (app / "compose.yaml").write_text(text.replace("${API_MODE:-fast}", "edited"))
    box(*compose, "up", "-d", env=env)
    second = _ids(box, compose)
    assert set(second) == names
    assert {n for n in names if second[n] != first[n]} == {"app-api-1", "app-web-1"}
    assert "API_MODE=edited" in _inspect(box, "app-api-1")[0]["Config"]["Env"]

    box(*compose, "down", "-v")
    assert box("ps", "-a", "-q").stdout == ""
    assert _networks(box) == set()
    assert _volumes(box) == set()


SMALL = """
x-box: &box
  image: box:1
  init: true
  command: [sleep, "1000"]
services:
  worker:
    <<: *box
    deploy: {replicas: 2}
  sick:
    <<: *box
    healthcheck: {test: "false", interval: 100ms, retries: 2}
  needs-sick:
    <<: *box
    depends_on: {sick: {condition: service_healthy}}
"""


def test_scale_verbs_orphans_and_an_unhealthy_dependency(box: Dockyard,
                                                         tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "compose.yaml").write_text(SMALL)
    compose = ["compose", "-f", str(folder / "compose.yaml")]
    try:
        box(*compose, "up", "-d", "worker")
        first = _ids(box, compose)
        assert set(first) == {"small-worker-1", "small-worker-2"}
        assert _networks(box) == {"small_default"}
        box(*compose, "up", "-d", "--scale", "worker=3", "worker")
        scaled = _ids(box, compose)
        assert set(scaled) == {"small-worker-1", "small-worker-2", "small-worker-3"}
        assert all(scaled[n] == first[n] for n in first)
        box(*compose, "up", "-d", "--scale", "worker=1", "worker")
        assert _ids(box, compose) == {"small-worker-1": first["small-worker-1"]}
        box(*compose, "up", "-d", "--no-recreate", "--scale", "worker=1", "worker")
        assert _ids(box, compose) == {"small-worker-1": first["small-worker-1"]}
        box(*compose, "up", "-d", "--force-recreate", "--scale", "worker=1", "worker")
        assert _ids(box, compose)["small-worker-1"] != first["small-worker-1"]

        box(*compose, "stop", "worker")
        assert box(*compose, "ps", "-q").stdout == ""
        box(*compose, "start", "worker")
        assert box(*compose, "ps", "-q").stdout.split() == [
            _inspect(box, "small-worker-1")[0]["Id"]]
        assert box(*compose, "config", "--services").stdout.split() == [
            "worker", "sick", "needs-sick"]
        assert box(*compose, "convert").stdout == box(*compose, "config").stdout

        failed = box(*compose, "up", "-d", "--wait-timeout", "30", "needs-sick", check=False)
        assert failed.returncode != 0
        assert "container small-sick-1 (service 'sick') is unhealthy" in failed.stderr
        assert "small-needs-sick-1" not in _ids(box, compose)

        # two independent services (started side by side); the rest are orphans now
        (folder / "compose.yaml").write_text(
            "x-box: &box {image: box:1, init: true, command: [sleep, '1000']}\n"
            "services:\n  other: *box\n  another: {<<: *box, deploy: {replicas: 2}}\n")
        warned = box(*compose, "up", "-d")
        assert "Found orphan containers (small-sick-1, small-worker-1)" in warned.stderr
        fresh = {"small-other-1", "small-another-1", "small-another-2"}
        assert set(_ids(box, compose)) == fresh | {"small-sick-1", "small-worker-1"}
        assert box(*compose, "ps", "-q", "another").stdout.count("\n") == 2
        box(*compose, "up", "-d", "--remove-orphans")
        assert set(_ids(box, compose)) == fresh
        box(*compose, "rm", "-s", "-f")
        assert _ids(box, compose) == {}

        (folder / "compose.yaml").write_text(
            "services:\n  plain: {image: box:1, init: true, command: [sleep, '1000']}\n"
            "  after: {image: box:1, depends_on: {plain: {condition: service_healthy}}}\n")
        unchecked = box(*compose, "up", "-d", check=False)
        assert "container small-plain-1 has no healthcheck configured" in unchecked.stderr
        assert set(_ids(box, compose)) == {"small-plain-1"}
    finally:
        box(*compose, "down", "-v", "--remove-orphans", check=False)
    assert box("ps", "-a", "-q").stdout == "" and _networks(box) == set()


def test_bad_input_creates_nothing(box: Dockyard, tmp_path: Path) -> None:
    for path in sorted((DATA / "bad").glob("*.yaml")):
        result = box("compose", "-f", str(path), "up", "-d", check=False)
        assert result.returncode != 0, path.name
        assert path.name in result.stderr, result.stderr
    (tmp_path / "compose.yaml").write_text(
        "services:\n  ok: {image: box:1, volumes: [v:/v]}\n  gone: {image: nosuch:1}\n"
        "volumes:\n  v: {}\n")
    result = box("compose", "-f", str(tmp_path / "compose.yaml"), "up", "-d", check=False)
    assert result.returncode != 0 and "nosuch:1" in result.stderr
    missing = box("compose", "-f", str(DATA / "app" / "compose.yaml"), "-p", "noimage",
                  "up", "-d", env={"GREETING": ""}, check=False)
    assert "required variable GREETING is missing a value" in missing.stderr
    assert box("ps", "-a", "-q").stdout == ""
    assert _networks(box) == set() and _volumes(box) == set()
