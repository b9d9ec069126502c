"""Writers of the metadata database queue in the kernel (flock on ``metadata.db.writers``),
not in SQLite's sleeping busy handler; the queue is let go with the transaction."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from dockyard.store.db import Database


def _db(tmp_path: Path) -> Database:
    db = Database(tmp_path / "metadata.db")
    db.migrate("t", ["CREATE TABLE t (v INTEGER)"])
    return db


def test_a_writer_waits_while_another_process_holds_the_queue(tmp_path: Path) -> None:
    db = _db(tmp_path)
    queue = os.open(tmp_path / "metadata.db.writers", os.O_RDWR)
    fcntl.flock(queue, fcntl.LOCK_EX)  # another writer, as far as the database knows
    done = threading.Event()

    def write() -> None:
        with db.transaction("writing") as tx:
            tx.execute("INSERT INTO t VALUES (1)")
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert not done.wait(0.5)  # queued behind the holder (SQLite's lock is free)
    finally:
        fcntl.flock(queue, fcntl.LOCK_UN)
        os.close(queue)
    writer.join(30)
    assert done.is_set()
    assert db.query("SELECT v FROM t") == [(1,)]
    db.close()


def test_the_queue_is_let_go_after_a_commit_and_after_a_failure(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.transaction("writing") as tx:
        tx.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(RuntimeError), db.transaction("failing"):
        raise RuntimeError("rolled back")
    queue = os.open(tmp_path / "metadata.db.writers", os.O_RDWR)
    try:
        fcntl.flock(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: no BlockingIOError
    finally:
        os.close(queue)
    db.close()
