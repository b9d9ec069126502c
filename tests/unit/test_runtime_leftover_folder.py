"""A runtime folder without its state file — a create or a delete that a kill cut short
between the folder and the state — is removed by ``delete`` (as runc does), so the
container's id can be created again; a folder with a state is never touched by that."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.errors import RuntimeContainerNotFound
from dockyard.runtime import operations
from dockyard.runtime.state import ContainerDir

ID = "a" * 64


@pytest.mark.parametrize("left", [[], ["fifo"], [".state.json.tmp123"]])
@pytest.mark.parametrize("force", [True, False])
def test_a_folder_without_its_state_is_removed_by_delete(tmp_path: Path, left: list[str],
                                                         force: bool) -> None:
    folder = tmp_path / ID
    folder.mkdir()
    for name in left:
        (folder / name).write_bytes(b"")
    with pytest.raises(RuntimeContainerNotFound):
        operations.delete(tmp_path, ID, force=force)
    assert not folder.exists()
    ContainerDir(tmp_path, ID).make()  # the id is free again
    assert folder.is_dir()


def test_a_missing_container_is_still_not_found(tmp_path: Path) -> None:
    with pytest.raises(RuntimeContainerNotFound):
        operations.delete(tmp_path, ID, force=True)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_with_its_state_is_not_removed_as_a_leftover(tmp_path: Path) -> None:
    folder = tmp_path / ID
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"not": "a record"}))
    with pytest.raises(TypeError):  # a damaged record is an error, not a leftover
        operations.delete(tmp_path, ID, force=True)
    assert (folder / "state.json").exists()
