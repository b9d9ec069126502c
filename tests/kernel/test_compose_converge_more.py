"""``dockyard compose`` for real, on what converge learnt last: networks and volumes
carry Compose's config-hash label; a network whose configuration changed is made
again under the same containers (stopped, reconnected, started: same IDs, as Docker
Compose does); a volume's change is reported and the volume kept; a no-op ``up``
reads the project from the cache and takes the fast path (no click, YAML, schema or
thread pool), and an edited file is applied at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root

FILE = """\
services:
  a:
    image: box:1
    command: ["sleep", "300"]
    init: true
    networks: [front, back]
    volumes: [data:/data]
networks:
  front: {}
  back: {internal: false}
volumes:
  data: {}
"""


def _inspect(box: Dockyard, *args: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(box(*args).stdout)[0]
    return doc


@pytest.fixture
def project(box: Dockyard, tmp_path: Path) -> Any:
    folder = tmp_path / "hashes"
    folder.mkdir()
    (folder / "compose.yaml").write_text(FILE)
    compose = ["compose", "-f", str(folder / "compose.yaml")]
    yield folder, compose
    box(*compose, "down", "-v", "-t", "1", check=False)


def test_a_changed_network_is_made_again_under_the_same_container(
        box: Dockyard, project: Any) -> None:
    folder, compose = project
    box(*compose, "up", "-d")
    first = _inspect(box, "inspect", "hashes-a-1")
    back = _inspect(box, "network", "inspect", "hashes_back")
    volume = _inspect(box, "volume", "inspect", "hashes_data")
    old_hash = back["Labels"]["com.docker.compose.config-hash"]
    assert volume["Labels"]["com.docker.compose.config-hash"]
    assert not back["Internal"]

    (folder / "compose.yaml").write_text(FILE.replace("internal: false", "internal: true"))
    up = box(*compose, "up", "-d")
    assert "Network hashes_back  Removed" in up.stderr, up.stderr
    back = _inspect(box, "network", "inspect", "hashes_back")
    assert back["Internal"] and back["Labels"]["com.docker.compose.config-hash"] != old_hash
    after = _inspect(box, "inspect", "hashes-a-1")
    assert after["Id"] == first["Id"] and after["State"]["Running"]
    assert sorted(after["NetworkSettings"]["Networks"]) == ["hashes_back", "hashes_front"]
    assert after["Id"] in back["Containers"]
    # the front network did not change: neither did it
    front = _inspect(box, "network", "inspect", "hashes_front")
    assert after["Id"] in front["Containers"]

    # a volume's change is said, and the volume (and its data) kept
    box("exec", "hashes-a-1", "sh", "-c", "echo kept > /data/f")
    (folder / "compose.yaml").write_text(FILE.replace("data: {}", "data: {labels: {x: y}}"))
    up = box(*compose, "up", "-d")
    assert "exists but doesn't match configuration" in up.stderr, up.stderr
    assert box("exec", "hashes-a-1", "cat", "/data/f").stdout == "kept\n"
    assert box(*compose, "up", "-d").stderr.count("Removed") == 0


# what a no-op `up -d` never needs (each costs milliseconds of its start)
NOT_FOR_A_NO_OP_UP = ("click", "yaml", "jsonschema", "concurrent.futures", "pyroute2",
                      "dockyard.cli.main", "dockyard.compose.loader",
                      "dockyard.compose.lower", "subprocess")


def test_a_no_op_up_takes_the_fast_path_and_an_edit_is_applied(
        box: Dockyard, project: Any) -> None:
    folder, compose = project
    box(*compose, "up", "-d")
    first = _inspect(box, "inspect", "hashes-a-1")["Id"]
    # (in this process: handed to a warm zygote, it imports none of compose at all)
    result = box(*compose, "up", "-d", env={"PYTHONPROFILEIMPORTTIME": "1",
                                            "DOCKYARD_WARM_CLI": "0"})
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "dockyard.cli.compose_cmds" in imported  # the measurement itself works
    assert sorted(set(NOT_FOR_A_NO_OP_UP) & imported) == []
    assert _inspect(box, "inspect", "hashes-a-1")["Id"] == first

    (folder / ".env").write_text("GREETING=changed\n")  # read by nothing: no change
    box(*compose, "up", "-d")
    assert _inspect(box, "inspect", "hashes-a-1")["Id"] == first
    (folder / "compose.yaml").write_text(FILE.replace('"300"', '"${LENGTH:-301}"'))
    box(*compose, "up", "-d")
    second = _inspect(box, "inspect", "hashes-a-1")
    assert second["Id"] != first and second["Config"]["Cmd"] == ["sleep", "301"]
    (folder / ".env").write_text("LENGTH=302\n")
    box(*compose, "up", "-d")
    assert _inspect(box, "inspect", "hashes-a-1")["Config"]["Cmd"] == ["sleep", "302"]
    box(*compose, "up", "-d", env={"LENGTH": "303"})
    assert _inspect(box, "inspect", "hashes-a-1")["Config"]["Cmd"] == ["sleep", "303"]


def test_build_with_additional_contexts(box: Dockyard, tmp_path: Path) -> None:
    """``additional_contexts``: a directory that ``COPY --from=NAME`` reads, an image
    that ``FROM NAME`` starts from; cache kinds the builder has not said to be
    unused, entry by entry; ``ssh`` refused by name."""
    folder = tmp_path / "ctxs"
    (folder / "app").mkdir(parents=True)
    (folder / "extra").mkdir()
    (folder / "extra" / "note.txt").write_text("from the extra context\n")
    (folder / "app" / "Dockerfile").write_text(
        "FROM base\nCOPY --from=extra note.txt /note.txt\n")
    compose_file = folder / "compose.yaml"
    compose_file.write_text(
        "services:\n  app:\n    build:\n      context: app\n"
        "      additional_contexts:\n        extra: ./extra\n"
        "        base: docker-image://box:1\n"
        "      cache_from: [\"type=local,src=/nowhere\"]\n"
        "      cache_to: [\"type=registry,ref=x\"]\n"
        "    command: [\"sleep\", \"300\"]\n")
    compose = ["compose", "-f", str(compose_file)]
    try:
        up = box(*compose, "up", "-d")
        assert "build.cache_from[0]: 'type=local,src=/nowhere' not used" in up.stderr, \
            up.stderr
        assert "build.cache_to[0]: 'type=registry,ref=x' not used" in up.stderr
        assert box("exec", "ctxs-app-1", "cat", "/note.txt").stdout == \
            "from the extra context\n"
        # the named directory is part of the step's cache key
        (folder / "extra" / "note.txt").write_text("changed\n")
        box(*compose, "up", "-d", "--build")
        assert box("exec", "ctxs-app-1", "cat", "/note.txt").stdout == "changed\n"
    finally:
        box(*compose, "down", "--rmi", "local", "-t", "1", check=False)
    compose_file.write_text(compose_file.read_text().replace(
        "      cache_from", "      ssh: [default]\n      cache_from"))
    refused = box(*compose, "up", "-d", check=False)
    assert refused.returncode != 0 and "services.app.build.ssh: not supported" in \
        refused.stderr, refused.stderr


def test_an_inline_cache_seeds_another_build(box: Dockyard, tmp_path: Path) -> None:
    """``cache_to: [type=inline]`` writes the steps into the image; a build with
    ``cache_from`` that image, its local cache forgotten, runs none of those steps
    again (a RUN that writes random bytes gives the same layer)."""
    folder = tmp_path / "inl"
    (folder / "ctx").mkdir(parents=True)
    (folder / "ctx" / "Dockerfile").write_text(
        "FROM box:1\nRUN head -c 16 /dev/urandom | od -x > /random\n")
    (folder / "compose.yaml").write_text(
        "services:\n"
        "  first:\n    build: {context: ctx, cache_to: [type=inline]}\n"
        "    image: inl-first:1\n    command: [\"sleep\", \"300\"]\n"
        "  second:\n    build: {context: ctx, cache_from: [inl-first:1]}\n"
        "    image: inl-second:1\n    command: [\"sleep\", \"300\"]\n"
        "  third:\n    build: {context: ctx}\n"
        "    image: inl-third:1\n    command: [\"sleep\", \"300\"]\n")
    compose = ["compose", "-f", str(folder / "compose.yaml")]
    try:
        box(*compose, "up", "-d", "first")
        first = box("exec", "inl-first-1", "cat", "/random").stdout
        box("builder", "prune", "-f")
        box(*compose, "up", "-d", "second")
        assert box("exec", "inl-second-1", "cat", "/random").stdout == first
        box("builder", "prune", "-f")  # without cache_from: run again, other bytes
        box(*compose, "up", "-d", "third")
        assert box("exec", "inl-third-1", "cat", "/random").stdout != first
    finally:
        box(*compose, "down", "--rmi", "all", "-t", "1", check=False)


NO_OP = """\
services:
  a:
    image: box:1
    command: ["sleep", "300"]
    env_file: [a.env]
  b:
    image: box:1
    command: ["sleep", "300"]
"""


def _ids(box: Dockyard, compose: list[str]) -> dict[str, str]:
    rows = [json.loads(line) for line in
            box(*compose, "ps", "-a", "--format", "json").stdout.splitlines()]
    return {row["Name"]: row["ID"] for row in rows}


def test_a_no_op_up_changes_nothing_and_sees_each_change_made_since(
        box: Dockyard, tmp_path: Path, rootfs_tar: Path) -> None:
    """A second ``up`` (the project read from the cache, on the warm path) leaves the
    containers alone; a container removed or stopped, an edited ``env_file`` and an
    image tag moved to another image are each converged by the next ``up``."""
    folder = tmp_path / "noop"
    folder.mkdir()
    (folder / "compose.yaml").write_text(NO_OP)
    (folder / "a.env").write_text("WORD=one\n")
    compose = ["compose", "-f", str(folder / "compose.yaml")]
    try:
        box(*compose, "up", "-d")
        first = _ids(box, compose)
        assert sorted(first) == ["noop-a-1", "noop-b-1"]
        again = box(*compose, "up", "-d")
        assert _ids(box, compose) == first
        assert "Creat" not in again.stderr and "Start" not in again.stderr, again.stderr

        box("rm", "-f", "noop-b-1")  # made again, alone
        box(*compose, "up", "-d")
        now = _ids(box, compose)
        assert now["noop-a-1"] == first["noop-a-1"] and now["noop-b-1"] != first["noop-b-1"]

        box("stop", "-t", "1", "noop-a-1")  # started again: the same container
        box(*compose, "up", "-d")
        assert _ids(box, compose) == now
        assert _inspect(box, "inspect", "noop-a-1")["State"]["Running"]

        (folder / "a.env").write_text("WORD=two\n")  # its service recreated, alone
        box(*compose, "up", "-d")
        edited = _ids(box, compose)
        assert edited["noop-a-1"] != now["noop-a-1"] and edited["noop-b-1"] == now["noop-b-1"]
        assert box("exec", "noop-a-1", "sh", "-c", "echo $WORD").stdout == "two\n"

        # box:1 now names another image (same files, another config): both recreated
        box("import", "-c", "ENV MOVED=yes", "-c", 'CMD ["sh"]', str(rootfs_tar), "box:2")
        box("tag", "box:2", "box:1")
        box(*compose, "up", "-d")
        moved = _ids(box, compose)
        assert all(moved[name] != edited[name] for name in moved), (moved, edited)
        assert box("exec", "noop-b-1", "sh", "-c", "echo $MOVED").stdout == "yes\n"
        assert _ids(box, compose) == moved
    finally:
        box(*compose, "down", "-t", "1", check=False)
