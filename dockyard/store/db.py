"""SQLite metadata: one database under the root, migrations per owning component.

WAL mode and a busy timeout make concurrent CLI invocations safe; every write is
a transaction, so a crash leaves either the old or the new rows.  ``sqlite3.Error``
is translated here, once, into dockyard's error kinds.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dockyard.errors import DataLoss, Unavailable


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise Unavailable(f"{what}: the metadata database is busy, try again") from exc
        raise DataLoss(f"{what}: metadata database error: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise DataLoss(f"{what}: metadata database error: {exc}") from exc


class Database:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with translate_errors(f"opening {path}"):
            # one connection shared by the threads of one process (parallel build
            # stages), serialised by a lock
            self.conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                                        check_same_thread=False)
            self.lock = threading.RLock()
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("CREATE TABLE IF NOT EXISTS schema_versions "
                              "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)")

    def migrate(self, component: str, migrations: Sequence[str]) -> None:
        """Apply the migrations of ``component`` that this database has not seen."""
        with self.transaction(f"migrating {component}"):
            row = self.conn.execute("SELECT version FROM schema_versions WHERE component=?",
                                    (component,)).fetchone()
            current = row[0] if row else 0
            for version, script in enumerate(migrations[current:], start=current + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute("INSERT OR REPLACE INTO schema_versions VALUES (?, ?)",
                                  (component, version))

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        with self.lock, translate_errors(what):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.lock, translate_errors("query"):
            return list(self.conn.execute(sql, params).fetchall())

    def close(self) -> None:
        self.conn.close()
