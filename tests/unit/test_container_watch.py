"""``engine.container_watch``: which containers' folders changed, from inotify (no root
needed): a rename in a folder, a folder removed, one that cannot be watched."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_without_an_inotify_instance_every_folder_is_changed_at_every_look(
        tmp_path: Path) -> None:
    """No descriptor to be had (as when the user's inotify instances are used up): no
    error, and nothing ever looks unchanged."""
    (tmp_path / "a").mkdir()
    code = (
        "import os, resource, sys\n"
        "from pathlib import Path\n"
        "from dockyard.engine.container_watch import ContainerWatch\n"
        "open_now = len(os.listdir('/proc/self/fd')) - 1\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (open_now, open_now))\n"
        "watch = ContainerWatch(Path(sys.argv[1]))\n"
        "print(watch.fileno(), watch.watch('a'), sorted(watch.changed().containers),\n"
        "      sorted(watch.changed().containers))\n"
        "watch.close()\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert out.split() == ["-1", "False", "['a']", "['a']"]
