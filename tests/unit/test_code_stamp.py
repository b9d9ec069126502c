"""The zygote's code stamp (supervise.zygote_address): a changed tree is a new stamp,
whichever way the change was made, and an installed tree is stamped by its folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.supervise import zygote_address
from dockyard.supervise.zygote_address import code_stamp


def _tree(base: Path) -> Path:
    package = base / "dockyard"
    for name in ("supervise", "engine", "cli"):
        (package / name).mkdir(parents=True)
        (package / name / "mod.py").write_text("X = 1\n")
    (package / "supervise" / "monitor.py").write_text("Y = 2\n")
    (package / "trace.py").write_text("Z = 3\n")
    return package


def _touch_later(path: Path) -> None:
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def test_a_source_tree_edited_in_place_is_a_new_stamp(tmp_path: Path) -> None:
    package = _tree(tmp_path / "src")
    before = code_stamp(str(package))
    assert code_stamp(str(package)) == before
    target = package / "engine" / "mod.py"
    with open(target, "r+") as handle:  # an editor's write in place: same size
        handle.write("X = 2\n")
    _touch_later(target)
    assert code_stamp(str(package)) != before


@pytest.mark.parametrize("change", ["replaced", "added", "removed"])
def test_an_installed_tree_changed_as_installers_do_is_a_new_stamp(
        tmp_path: Path, change: str) -> None:
    package = _tree(tmp_path / "lib" / "site-packages")
    folder = package / "engine"
    _touch_later(folder)  # (a second apart, whatever the file system's clock grain)
    before = code_stamp(str(package))
    if change == "replaced":  # pip: the old file unlinked, the new one written
        (folder / "mod.py").unlink()
        (folder / "mod.py").write_text("X = 1\n")
    elif change == "added":
        (folder / "new.py").write_text("")
    else:
        (folder / "mod.py").unlink()
    assert code_stamp(str(package)) != before


def test_an_installed_tree_is_stamped_by_its_folders_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _tree(tmp_path / "lib" / "site-packages")
    for number in range(50):
        (package / "engine" / f"m{number}.py").write_text("")
    seen: list[str] = []
    real_stat = os.stat

    def counting_stat(path: str, *args: object, **kwargs: object) -> os.stat_result:
        seen.append(path)
        return real_stat(path)

    monkeypatch.setattr(os, "stat", counting_stat)
    code_stamp(str(package))
    assert seen and not [path for path in seen if path.endswith(".py")]
    assert len(seen) <= len(zygote_address._PACKAGES) + 2
    seen.clear()
    code_stamp(str(_tree(tmp_path / "src")))  # a source tree: every file
    assert any(path.endswith("engine/mod.py") for path in seen)
