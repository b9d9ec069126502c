"""A generated container name is unique when stored: a create beside another that drew
the same name (Docker's generator has ~550 adjective_name pairs) is given another,
inside the storing transaction; a name the user chose is refused as Docker refuses it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.engine.records import ContainerRecord, ContainerStore
from dockyard.engine.spec import ContainerSpec
from dockyard.errors import Conflict
from dockyard.store.db import Database


def _record(name: str) -> ContainerRecord:
    return ContainerRecord(
        id=os.urandom(32).hex(), name=name, image="box:1", image_id="sha256:" + "0" * 64,
        manifest_digest="", spec=ContainerSpec(image="box:1", name=name), created="",
        state="created", pid=0, exit_code=0, started_at="", finished_at="",
        restart_count=0, oom_killed=False, error="", supervisor_pid=0,
        stopped_by_user=False)


@pytest.fixture
def store(tmp_path: Path) -> ContainerStore:
    return ContainerStore(Database(tmp_path / "metadata.db"))


def test_a_generated_name_drawn_twice_is_drawn_again(store: ContainerStore) -> None:
    first = store.add(_record("calm_hopper"), generated_name=True)
    second = store.add(_record("calm_hopper"), generated_name=True)
    assert first.name == "calm_hopper" and second.name not in ("", "calm_hopper")
    assert second.spec.name == second.name
    assert store.find(second.id).name == second.name
    store.db.close()


def test_a_chosen_name_in_use_is_a_conflict(store: ContainerStore) -> None:
    store.add(_record("mine"))
    with pytest.raises(Conflict, match='The container name "/mine" is already in use'):
        store.add(_record("mine"))
    store.db.close()
