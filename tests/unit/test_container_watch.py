"""``engine.container_watch``: which containers' folders changed, from inotify (no root
needed): a rename in a folder, a folder removed, one that cannot be watched."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.engine.container_watch import Changes, ContainerWatch


def test_a_rename_or_a_removal_in_a_watched_folder_is_reported_once(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    watch = ContainerWatch(tmp_path)
    try:
        assert watch.watch("a") and watch.watch("b")
        assert watch.changed() == Changes(frozenset(), False)
        (tmp_path / "a" / "status.json.tmp").write_text("{}")
        os.replace(tmp_path / "a" / "status.json.tmp", tmp_path / "a" / "status.json")
        assert watch.changed() == Changes(frozenset({"a"}), False)
        assert watch.changed() == Changes(frozenset(), False)  # read once
        (tmp_path / "a" / "status.json").unlink()
        (tmp_path / "b" / "x").touch()
        assert watch.changed().containers == {"a", "b"}
        (tmp_path / "b" / "x").unlink()
        (tmp_path / "b").rmdir()
        assert watch.changed().containers == {"b"}  # the folder gone: its watch too
        assert watch.changed().containers == frozenset()
        watch.forget("a")
        (tmp_path / "a" / "y").touch()
        assert watch.changed().containers == frozenset()
    finally:
        watch.close()


def test_a_folder_that_cannot_be_watched_is_changed_at_every_look(tmp_path: Path) -> None:
    watch = ContainerWatch(tmp_path)
    try:
        assert not watch.watch("late")  # not made yet
        assert watch.changed().containers == {"late"}
        assert watch.changed().containers == {"late"}
        (tmp_path / "late").mkdir()
        assert watch.watch("late")
        assert watch.changed().containers == frozenset()
    finally:
        watch.close()
