"""Paths, atomic writes and (later) the SQLite metadata store under ``--root``."""

from dockyard.store.atomic import atomic_write, fsync_dir

__all__ = ["atomic_write", "fsync_dir"]
