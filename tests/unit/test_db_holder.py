"""The command parent's holder of a root's database (``cli.warm_worker.hold_store``):
it keeps the database open read-only, follows it when it is made anew, and makes
nothing where there is none."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from dockyard.cli.warm_worker import hold_store
from dockyard.store.db import Database, hold_wal_index
from dockyard.testing.poll import until


def _links_to(path: Path) -> list[str]:
    """What this process's descriptors open at ``path`` read as (" (deleted)" once
    the file was removed)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)) and not target.startswith(f"{path}-"):
            found.append(target)
    return found


def _holding(root: Path) -> tuple[threading.Thread, socket.socket]:
    """``hold_store`` in a thread (in a holder, a process of its own), and our end."""
    ours, theirs = socket.socketpair()

    def hold() -> None:
        with theirs:
            hold_store(root / "run", theirs)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread, ours


def test_the_holder_keeps_the_database_open_and_follows_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    first = Database(path)
    first.conn.execute("CREATE TABLE t (x)")  # (in WAL mode: its -shm is there now)
    assert _links_to(path) == [str(path)]
    thread, nudges = _holding(tmp_path)
    until("the holder to open it", lambda: len(_links_to(path)) == 2)
    first.conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    second = Database(path)  # the root made anew (system reset, then a command)
    second.conn.execute("CREATE TABLE t (x)")
    nudges.send(b".")
    until("the holder to let the old one go and hold the new one",
          lambda: sorted(_links_to(path)) == [str(path)] * 2)
    second.conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    third = Database(path)  # and again, with no command after it (no nudge)
    third.conn.execute("CREATE TABLE t (x)")
    until("the holder to look again by itself and hold the newest",
          lambda: sorted(_links_to(path)) == [str(path)] * 2)
    nudges.close()
    thread.join(10)
    assert not thread.is_alive()
    third.conn.close()


def test_the_holder_makes_nothing_where_there_is_no_database(tmp_path: Path) -> None:
    thread, nudges = _holding(tmp_path)
    nudges.send(b".")
    nudges.close()
    thread.join(10)
    assert not thread.is_alive()
    assert list(tmp_path.iterdir()) == []
    assert hold_wal_index(tmp_path / "metadata.db") is None
