"""The overlay snapshotter: committed layers by chain ID, active snapshots on top.

Layout under its root:
  ``layers/<chain-id hex>/`` one extracted layer each (overlay lower dir), shared
  by every image and container whose chain includes it; written to ``tmp/`` first
  and renamed in when complete.
  ``active/<key>/{upper,work}`` a container's (or build step's) writable layer.
Metadata (parent chain, diff_id, size) lives in the SQLite database.
``prepare`` returns ``Mount`` data; mounting happens in ``snapshots.mount``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, NamedTuple

from dockyard.errors import AlreadyExists, DigestMismatch, NotFound
from dockyard.fs.tree import remove_tree, tree_size
from dockyard.snapshots.mount import Mount
from dockyard.store.db import Database, Transaction
from dockyard.store.idmap import IdMap, check_marker

# what overlayfs makes in the workdir of a volatile mount (Documentation/filesystems/
# overlayfs.rst, "Volatile mount"), relative to the workdir
VOLATILE_MARKER = "work/incompat/volatile"

MIGRATIONS = [
    """
    CREATE TABLE layers (
        chain_id TEXT PRIMARY KEY,
        parent TEXT,
        diff_id TEXT NOT NULL,
        size INTEGER NOT NULL
    );
    CREATE TABLE active (
        key TEXT PRIMARY KEY,
        parent TEXT,
        readonly INTEGER NOT NULL
    )
    """,
]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI chain IDs: ChainID(L0) = DiffID(L0);
    ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    result: list[str] = []
    for diff_id in diff_ids:
        if not result:
            result.append(diff_id)
        else:
            joined = f"{result[-1]} {diff_id}".encode()
            result.append(f"sha256:{hashlib.sha256(joined).hexdigest()}")
    return result


class LayerInfo(NamedTuple):
    chain_id: str
    parent: str | None
    diff_id: str
    size: int


class OverlaySnapshotter:
    """``idmap``: a remapped root (``userns_remap``) keeps every layer and upper
    directory in the mapping's host ids (see dockyard.store.idmap)."""

    def __init__(self, root: Path, db: Database, idmap: IdMap | None = None) -> None:
        self.root = root
        self.db = db
        self.idmap = idmap
        db.migrate("snapshots", MIGRATIONS)
        if not db.read_only:  # (a reader — the warm path's warm-up — makes nothing)
            for sub in ("layers", "active", "tmp"):
                (root / sub).mkdir(parents=True, exist_ok=True)
        if idmap is not None or (root / "idmap").exists():
            check_marker(root, idmap, holds_layers=bool(
                db.query("SELECT 1 FROM layers LIMIT 1")))

    def _own(self, directory: Path) -> None:
        """A directory a container's root must own (a layer's or upper's top)."""
        if self.idmap is not None:
            os.chown(directory, *self.idmap.root)

    def layer_dir(self, chain_id: str) -> Path:
        return self.root / "layers" / chain_id.split(":", 1)[1]

    def has_layer(self, chain_id: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM layers WHERE chain_id=?", (chain_id,)))

    def layer(self, chain_id: str) -> LayerInfo:
        rows = self.db.query("SELECT * FROM layers WHERE chain_id=?", (chain_id,))
        if not rows:
            raise NotFound(f"snapshot {chain_id} not found")
        return LayerInfo(*rows[0])

    def unpack(self, chain_id: str, parent: str | None, diff_id: str,
               open_layer: Callable[[], AbstractContextManager[IO[bytes]]]) -> None:
        """Extract one layer (uncompressed stream) as ``chain_id`` unless already there."""
        if self.has_layer(chain_id):
            return
        work = self.root / "tmp" / os.urandom(16).hex()
        work.mkdir()
        # held while we work: ``system check`` removes only work dirs nobody holds
        hold = os.open(work, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(hold, fcntl.LOCK_EX)
        try:
            with open_layer() as stream:
                from dockyard.snapshots.unpack import apply_layer

                actual = apply_layer(stream, str(work), self.idmap)
                self._own(work)
            if actual != diff_id:
                raise DigestMismatch(f"layer {diff_id}: uncompressed content has digest "
                                     f"{actual}")
            size = tree_size(work)
            target = self.layer_dir(chain_id)
            try:
                os.rename(work, target)
            except OSError as exc:
                # a concurrent unpack of the same layer (another CLI, or a thread of
                # this one: `compose up` creates services side by side) won: ours is
                # redundant
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not target.exists():
                    raise
                remove_tree(work)
            with self.db.transaction("recording a layer") as conn:
                conn.execute("INSERT OR IGNORE INTO layers VALUES (?, ?, ?, ?)",
                             (chain_id, parent, diff_id, size))
        finally:
            if work.exists():
                remove_tree(work, ignore_errors=True)
            os.close(hold)

    def abandoned_work(self) -> list[Path]:
        """Unpack work dirs whose unpack died (killed, host crash): nobody holds them."""
        abandoned = []
        for work in sorted((self.root / "tmp").iterdir()):
            try:
                fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                abandoned.append(work)
            except OSError:
                pass
            finally:
                os.close(fd)
        return abandoned

    def lower_dirs(self, chain_id: str) -> list[str]:
        """Top-most first, as overlayfs's lowerdir option wants them."""
        dirs = []
        current: str | None = chain_id
        while current is not None:
            info = self.layer(current)
            dirs.append(str(self.layer_dir(current)))
            current = info.parent
        return dirs

    def prepare(self, key: str, parent: str | None) -> list[Mount]:
        """A new writable snapshot on top of ``parent`` (a chain ID, or None for empty)."""
        active = self.root / "active" / key
        try:
            active.mkdir()
        except FileExistsError:
            raise AlreadyExists(f"snapshot {key} already exists") from None
        (active / "upper").mkdir()
        self._own(active / "upper")
        (active / "work").mkdir()
        with self.db.transaction("preparing a snapshot") as conn:
            conn.execute("INSERT INTO active VALUES (?, ?, 0)", (key, parent))
        return self.mounts(key)

    def mounts(self, key: str, *, volatile: bool = False) -> list[Mount]:
        """How to mount the snapshot ``key``.  ``volatile``: a snapshot thrown away with
        its container (``run --rm``, as podman does for those): overlayfs's
        ``volatile`` option drops the sync of the whole upper file system that its
        unmount does otherwise (~10 ms on every ``run --rm`` exit here, far more on a
        host with writes in flight), and the container's own fsyncs.  After a host
        crash such a snapshot is not to be mounted again; it was to be removed anyway.
        overlayfs leaves a marker in the workdir that makes it refuse any later mount
        of the snapshot, even after a clean unmount (a ``cp`` into a created ``--rm``
        container, a start that failed and is tried again): it is removed first."""
        rows = self.db.query("SELECT parent FROM active WHERE key=?", (key,))
        if not rows:
            raise NotFound(f"snapshot {key} not found")
        parent = rows[0][0]
        active = self.root / "active" / key
        if parent is None:
            return [Mount("bind", str(active / "upper"), ("rbind",))]
        lowers = ":".join(self.lower_dirs(parent))
        if volatile:  # (the marker holds a "dirty" directory of its own)
            remove_tree(active / "work" / VOLATILE_MARKER, ignore_errors=True)
        return [Mount("overlay", "overlay", (f"lowerdir={lowers}",
                                             f"upperdir={active / 'upper'}",
                                             f"workdir={active / 'work'}", "index=off",
                                             *(("volatile",) if volatile else ())))]

    def commit(self, key: str, chain_id: str, diff_id: str) -> None:
        """Turn an active snapshot (unmounted) into the committed layer ``chain_id``.

        Its upper dir is already in the overlay format layers are unpacked into
        (whiteout devices, opaque xattrs), so it is renamed, not re-extracted.
        """
        rows = self.db.query("SELECT parent FROM active WHERE key=?", (key,))
        if not rows:
            raise NotFound(f"snapshot {key} not found")
        if not self.has_layer(chain_id):
            upper = self.upper_dir(key)
            size = tree_size(upper)
            target = self.layer_dir(chain_id)
            # A directory already there is complete (it got there by one rename): a
            # concurrent build committed the same layer, or a crash came before the
            # database row.  Same chain ID, same content: keep it, drop ours.
            if not target.exists():
                try:
                    os.rename(upper, target)
                except OSError:
                    if not target.exists():
                        raise
            with self.db.transaction("committing a layer") as conn:
                conn.execute("INSERT OR IGNORE INTO layers VALUES (?, ?, ?, ?)",
                             (chain_id, rows[0][0], diff_id, size))
        self.remove(key)

    def upper_dir(self, key: str) -> Path:
        return self.root / "active" / key / "upper"

    def remove(self, key: str) -> None:
        self.remove_files(key)
        with self.db.transaction("removing a snapshot") as tx:
            self.forget(key, tx)

    def remove_files(self, key: str) -> None:
        """An active snapshot's files, its row left (``forget``): a row without its
        files is what a crash between the two leaves, and ``remove`` finishes it."""
        remove_tree(self.root / "active" / key, ignore_errors=True)

    def forget(self, key: str, tx: Transaction) -> None:
        """An active snapshot's row, in the caller's transaction (after ``remove_files``)."""
        tx.execute("DELETE FROM active WHERE key=?", (key,))

    def remove_layer(self, chain_id: str) -> None:
        remove_tree(self.layer_dir(chain_id), ignore_errors=True)
        with self.db.transaction("removing a layer") as conn:
            conn.execute("DELETE FROM layers WHERE chain_id=?", (chain_id,))

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(*row) for row in self.db.query("SELECT * FROM layers")]
