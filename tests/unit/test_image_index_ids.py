"""``ImageIndex.ids_of``: the IDs of several references in one query (a compose
project's images, looked up once per ``up``), each what ``resolve`` finds."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import ImageNotFound
from dockyard.images.index import ImageIndex
from dockyard.store.db import Database

BOX = "sha256:" + "b" * 64
BOX_CONFIG = "sha256:" + "1" * 64
OTHER = "sha256:" + "c" * 64
OTHER_CONFIG = "sha256:" + "2" * 64


@pytest.fixture
def index(tmp_path: Path) -> ImageIndex:
    images = ImageIndex(Database(tmp_path / "metadata.db"))
    images.add(BOX, BOX_CONFIG, "m", 1, "c", ["docker.io/library/box:1",
                                              "docker.io/library/box:latest"],
               repo_digest=("docker.io/library/box", BOX))
    images.add(OTHER, OTHER_CONFIG, "m", 1, "c", ["registry.test:5000/team/other:2"])
    return images


def _resolved(index: ImageIndex, text: str) -> str | None:
    try:
        return index.resolve(text).id
    except ImageNotFound:
        return None


def test_several_names_are_what_resolve_finds_for_each(index: ImageIndex) -> None:
    texts = ["box:1", "box", "docker.io/library/box:1", "registry.test:5000/team/other:2",
             "other:2", "missing:1", f"box@{BOX}", f"box@sha256:{'d' * 64}", "1111",
             BOX_CONFIG, "NOT A REFERENCE", "box:1"]
    found = index.ids_of(texts)
    assert found == {text: _resolved(index, text) for text in texts}
    assert found["box:1"] == found["box"] == BOX_CONFIG
    assert found["registry.test:5000/team/other:2"] == OTHER_CONFIG
    assert found["missing:1"] is None and found["other:2"] is None


def test_a_moved_tag_is_seen(index: ImageIndex) -> None:
    assert index.ids_of(["box:1"]) == {"box:1": BOX_CONFIG}
    index.tag("docker.io/library/box:1", OTHER)
    assert index.ids_of(["box:1", "box"]) == {"box:1": OTHER_CONFIG, "box": BOX_CONFIG}
