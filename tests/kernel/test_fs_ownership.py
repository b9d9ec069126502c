"""A pod's fsGroup given to a volume's tree (``fs.ownership``), against a tree a
container made: symlinks to a host directory and to a host file, at the top level
and below, and a deep tree.  The host sentinel keeps its modes, owners and content;
everything of the tree itself becomes the group's."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dockyard.fs.ownership import give_group, needs_change
from tests.kernel.test_containment import Sentinel, sentinel  # noqa: F401 (the fixture)

pytestmark = pytest.mark.root


def test_the_group_is_given_to_the_tree_and_never_through_a_symlink(
        tmp_path: Path, sentinel: Sentinel) -> None:  # noqa: F811 (the fixture)
    top = tmp_path / "volume"
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "sub" / "file").write_text("data")
    os.chmod(top / "sub" / "file", 0o4600)  # a set-id bit chown clears is put back
    os.symlink(sentinel.path, top / "to-dir")
    os.symlink(sentinel.path / "secret", top / "sub" / "to-file")
    os.symlink("../../..", top / "sub" / "deeper" / "up")
    level = top / "sub" / "deeper"
    for _ in range(200):
        level = level / "d"
        level.mkdir()
    assert needs_change(top, 2000)
    changed = give_group(top, 2000)
    assert sentinel.unchanged()
    assert changed == 204  # the top, sub, deeper, file and the 200 levels; no symlink
    for path in (top, top / "sub", top / "sub" / "deeper", level):
        info = os.lstat(path)
        assert (info.st_gid, stat.S_IMODE(info.st_mode) & 0o2070) == (2000, 0o2070), path
    info = os.lstat(top / "sub" / "file")
    assert (info.st_gid, stat.S_IMODE(info.st_mode)) == (2000, 0o4660)
    assert os.lstat(top / "to-dir").st_gid == 0  # the link itself is left alone too
    assert not needs_change(top, 2000) and needs_change(top, 3000)
    assert give_group(top, 2000, readonly=True) == 204
