"""SQLite metadata: one database under the root, migrations per owning component.

WAL mode and a busy timeout make concurrent CLI invocations safe; every write is
a transaction, so a crash leaves either the old or the new rows.  ``sqlite3.Error``
is translated here, once, into dockyard's error kinds.

Opening writes nothing unless something must change: the schema versions are read
first and a write transaction is begun only for a pending migration, and WAL mode
(which the file remembers) is set only on a new database.  So listing works on a
root that cannot be written:

* a read-only filesystem (or a directory this user may not write) is opened with
  ``mode=ro``, which reads a WAL database while its ``-shm`` and ``-wal`` exist
  (left by a crash, or by a process that has it open); without them SQLite cannot
  build its WAL index there, and the file is opened ``immutable=1``: read as it is
  (every committed transaction is in it once the last connection closed cleanly).
  A write then fails as "<what>: <path>: read-only file system".
* a full disk: SQLite needs room for its ``-shm`` index and for ``-wal`` frames even
  to delete rows.  When opening or committing fails for lack of space, the root's
  reserve (``store.reserve``) is given up and the open, or the transaction, retried:
  SQLite rolls a transaction back when its commit finds the disk full, so the body's
  statements are replayed from their record, provided every read gives back what
  the body saw (otherwise "try again").
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dockyard.errors import DataLoss, PermissionDenied, Unavailable
from dockyard.store import reserve
from dockyard.store.oserror import translated

# primary result codes (an error's sqlite_errorcode & 0xff)
_IOERR = 10
_READONLY = 8
_FULL = 13
_CANTOPEN = 14


def _code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _why_read_only(path: Path) -> str | None:
    """Why ``path`` (the database's directory) cannot be written, or None if it can."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "read-only file system"
        if not os.access(path, os.W_OK):
            return "permission denied"
    except OSError:
        return None
    return None


def _versions(conn: sqlite3.Connection) -> dict[str, int]:
    """Each component's schema version, read without writing (none on a new file)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                        "name='schema_versions'").fetchone():
        return {}
    return {str(c): int(v) for c, v in
            conn.execute("SELECT component, version FROM schema_versions")}


def hold_wal_index(path: Path) -> tuple[sqlite3.Connection, tuple[int, int]] | None:
    """A read-only connection to the database at ``path`` that does nothing but stay
    open, and the file's (device, inode); None when there is no database there, or it
    cannot be opened read-only yet (no ``-wal`` and ``-shm`` beside it).

    Why: the first process to open a WAL database when no other has it open (SQLite's
    "dead man's switch" lock on the ``-shm`` file is free) throws the shared WAL index
    away and rebuilds it by reading every frame of the ``-wal`` file.  dockyard's
    commands end with ``os._exit`` (no checkpoint on close), so that file holds up to
    ~4 MB (the auto-checkpoint's 1,000 pages) and each command paid 1.5-2.5 ms to
    read it before its first query; with one connection held open elsewhere, an open
    reads the index as it is (~0.6 ms).  Read-only, and only where the ``-wal`` and
    ``-shm`` are there already: it does not make the file or those (the root may be
    being removed; a removal between the look and the open is the one window), and
    never checkpoints.  Holding it open blocks nothing: it has no transaction open."""
    try:
        info = os.stat(path)
        if not (os.path.exists(f"{path}-wal") and os.path.exists(f"{path}-shm")):
            return None
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                               isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error):
        return None
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # (maps the index)
    except sqlite3.Error:
        conn.close()
        return None
    return conn, (info.st_dev, info.st_ino)


class Result:
    """A statement's rows (fetched at once), as a cursor offers them."""

    def __init__(self, rows: list[Any], rowcount: int, lastrowid: int | None) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Any]:
        rows, self._next = self._rows[self._next:], len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class Transaction:
    """What a transaction's body executes through: the connection's ``execute``, each
    statement recorded with what it returned, so that a commit the disk had no room
    for can be replayed once space is freed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._log: list[tuple[bool, str, Any, list[Any], int]] = []

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Result:
        params = params if isinstance(params, tuple | dict) else tuple(params)
        cursor = self._conn.execute(sql, params)
        rows = cursor.fetchall()
        self._log.append((False, sql, params, rows, cursor.rowcount))
        return Result(rows, cursor.rowcount, cursor.lastrowid)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Result:
        params = [tuple(p) for p in seq]
        cursor = self._conn.executemany(sql, params)
        self._log.append((True, sql, params, [], cursor.rowcount))
        return Result([], cursor.rowcount, cursor.lastrowid)

    def replay(self) -> bool:
        """Execute the recorded statements again; whether each gave the same result."""
        for many, sql, params, rows, rowcount in self._log:
            cursor = (self._conn.executemany(sql, params) if many
                      else self._conn.execute(sql, params))
            if cursor.fetchall() != rows or cursor.rowcount != rowcount:
                return False
        return True


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        # why this database is open read-only ("read-only file system"), or None
        self.read_only: str | None = None
        with translated(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
        with self._errors(f"opening {path}"):
            # one connection shared by the threads of one process (parallel build
            # stages), serialised by the lock
            self.conn, self._versions = self._open()

    @classmethod
    def existing(cls, path: Path, why: str) -> Database:
        """The database at ``path`` read as its file is (``immutable``: no lock taken, no
        ``-wal`` or ``-shm`` read or made, so what the WAL holds is not seen), never
        made (not it, not its folder): for a reader that must leave no trace and may
        read a stale state, such as the warm path's warm-up (``cli.warm_worker``),
        which may run just as ``system reset`` removes the root (SQLite's read-only
        mode would make a missing ``-shm`` there).  ``why`` is what a write is refused
        with.  FileNotFoundError if there is none."""
        if not path.is_file():
            raise FileNotFoundError(path)
        db = cls.__new__(cls)
        db.path, db.lock, db.read_only = path, threading.RLock(), why
        with db._errors(f"opening {path}"):
            db.conn, db._versions = db._open_read_only(immutable=True)
        return db

    def _open(self) -> tuple[sqlite3.Connection, dict[str, int]]:
        # (SQLite would open a file it cannot write read-only, saying nothing)
        self.read_only = _why_read_only(self.path.parent)
        if self.read_only:
            return self._open_read_only()
        try:
            return self._open_writable()
        except sqlite3.OperationalError as exc:
            if _code(exc) in (_FULL, _IOERR) and self._give_up_reserve(exc):
                return self._open_writable()
            reason = _why_read_only(self.path.parent)
            if reason is None:
                raise
            self.read_only = reason
        return self._open_read_only()

    def _open_writable(self) -> tuple[sqlite3.Connection, dict[str, int]]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            versions = _versions(conn)  # reads the header first: journal_mode is then true
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
        except BaseException:
            conn.close()
            raise
        return conn, versions

    def _open_read_only(self, immutable: bool = False,
                        ) -> tuple[sqlite3.Connection, dict[str, int]]:
        uri = self.path.absolute().as_uri()
        for options in ("mode=ro&immutable=1",) if immutable else \
                ("mode=ro", "mode=ro&immutable=1"):
            conn = sqlite3.connect(f"{uri}?{options}", uri=True, timeout=30,
                                   isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA foreign_keys=ON")
                return conn, _versions(conn)
            except sqlite3.OperationalError:
                conn.close()
                if "immutable" in options:
                    raise
        raise AssertionError("unreachable")

    def _give_up_reserve(self, exc: sqlite3.Error) -> bool:
        """Delete the root's space reserve for a write that found the disk full;
        whether there was one (and a retry may succeed)."""
        if _code(exc) != _FULL and not reserve.low_on_space(self.path.parent):
            return False  # an I/O error that is not about space
        return reserve.release(self.path.parent)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            code = _code(exc)
            if code == _FULL or (code == _IOERR and reserve.low_on_space(self.path.parent)):
                raise Unavailable(f"{what}: {self.path}: no space left on device") from exc
            if code in (_READONLY, _CANTOPEN):
                reason = self.read_only or _why_read_only(self.path.parent)
                if reason is not None:
                    raise PermissionDenied(f"{what}: {self.path}: {reason}") from exc
            if "locked" in str(exc) or "busy" in str(exc):
                raise Unavailable(f"{what}: the metadata database is busy, try again") from exc
            raise DataLoss(f"{what}: metadata database error: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise DataLoss(f"{what}: metadata database error: {exc}") from exc

    def migrate(self, component: str, migrations: Sequence[str]) -> None:
        """Apply the migrations of ``component`` that this database has not seen
        (nothing is written when there are none)."""
        if self._versions.get(component, 0) >= len(migrations):
            return
        if self.read_only:
            if self._versions.get(component, 0) == 0:
                self._empty_in_memory(component, migrations)
                return
            raise PermissionDenied(f"migrating {component}: {self.path}: {self.read_only}")
        with self.transaction(f"migrating {component}") as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_versions "
                         "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_versions WHERE component=?",
                               (component,)).fetchone()
            current = row[0] if row else 0
            for version, script in enumerate(migrations[current:], start=current + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT OR REPLACE INTO schema_versions VALUES (?, ?)",
                             (component, version))
        self._versions[component] = max(current, len(migrations))

    def _empty_in_memory(self, component: str, migrations: Sequence[str]) -> None:
        """A component this read-only root never used (``network ls`` before any
        network was made): its tables are made empty in SQLite's in-memory TEMP schema,
        so reading them answers "nothing" and the file is not touched."""
        with self.lock, self._errors(f"reading {component}"):
            for script in migrations:
                for statement in script.split(";"):
                    text = statement.strip()
                    if text.upper().startswith("CREATE TABLE"):
                        text = "CREATE TEMP TABLE" + text[len("CREATE TABLE"):]
                    if text:
                        self.conn.execute(text)
        self._versions[component] = len(migrations)

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[Transaction]:
        with self.lock, self._errors(what):
            self.conn.execute("BEGIN IMMEDIATE")
            tx = Transaction(self.conn)
            try:
                yield tx
            except BaseException:
                if self.conn.in_transaction:  # SQLite rolls back by itself on some errors
                    self.conn.execute("ROLLBACK")
                raise
            self._commit(tx, what)

    def _commit(self, tx: Transaction, what: str) -> None:
        try:
            self.conn.execute("COMMIT")
            return
        except sqlite3.OperationalError as exc:
            if _code(exc) not in (_FULL, _IOERR) or not self._give_up_reserve(exc):
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        if self.conn.in_transaction:  # still open: the commit alone can be retried
            self.conn.execute("COMMIT")
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            same = tx.replay()
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        if not same:
            self.conn.execute("ROLLBACK")
            raise Unavailable(f"{what}: the metadata database changed while it was retried "
                              f"after the disk filled up, try again")
        self.conn.execute("COMMIT")

    def version(self) -> tuple[int, int]:
        """Changes since the last call tell: SQLite's ``data_version`` (another
        connection committed) and this connection's own ``total_changes``."""
        with self.lock, self._errors("query"):
            return int(self.conn.execute("PRAGMA data_version").fetchone()[0]), \
                self.conn.total_changes

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.lock, self._errors("query"):
            return list(self.conn.execute(sql, params).fetchall())

    def close(self) -> None:
        self.conn.close()
