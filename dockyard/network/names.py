"""A user network's name table: which running container answers to which names.

One file per network under the run dir (``networks/<name>.names``), a line per
running container: ``address<TAB>container id<TAB>name alias …``.  The engine
writes it (under a flock, atomically) when a container starts, stops, connects or
disconnects; the embedded DNS servers in the supervisors read it, re-reading only
when it changed.  It lives in the run dir, so a reboot leaves no stale names.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from dockyard.store.atomic import atomic_write


def table_path(run_dir: Path, network: str) -> Path:
    return run_dir / "networks" / f"{network}.names"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def publish(path: Path, container_id: str, address: str, names: tuple[str, ...]) -> None:
    with _locked(path):
        kept = [line for line in _lines(path) if line.split("\t")[1:2] != [container_id]]
        kept.append(f"{address}\t{container_id}\t{' '.join(names)}")
        atomic_write(path, ("\n".join(kept) + "\n").encode(), 0o644, durable=False)


def withdraw(path: Path, container_id: str) -> None:
    if not path.exists():
        return
    with _locked(path):
        kept = [line for line in _lines(path) if line.split("\t")[1:2] != [container_id]]
        if kept:
            atomic_write(path, ("\n".join(kept) + "\n").encode(), 0o644, durable=False)
        else:
            path.unlink(missing_ok=True)


def remove_table(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_suffix(".lock").unlink(missing_ok=True)


class NameReader:
    """One table, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self.rows: list[tuple[str, str, tuple[str, ...]]] = []  # address, id, names

    def refresh(self) -> None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self.rows, self._stamp = [], None
            return
        stamp = (info.st_mtime_ns, info.st_ino)
        if stamp == self._stamp:
            return
        rows = []
        for line in _lines(self.path):
            fields = line.split("\t")
            if len(fields) == 3:
                rows.append((fields[0], fields[1], tuple(n.lower() for n in fields[2].split())))
        self.rows, self._stamp = rows, stamp


class Resolver:
    """Names as the querying container sees them: from every network it is on (found
    by its source address), and from no other, so networks stay apart in DNS too."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._readers: dict[str, NameReader] = {}

    def _tables(self) -> list[NameReader]:
        try:
            found = [p for p in os.listdir(self.directory) if p.endswith(".names")]
        except FileNotFoundError:
            return []
        readers = []
        for name in found:
            reader = self._readers.get(name)
            if reader is None:
                reader = self._readers[name] = NameReader(self.directory / name)
            reader.refresh()
            readers.append(reader)
        return readers

    def lookup(self, name: str, client: str) -> list[str]:
        wanted = name.lower().rstrip(".")
        tables = self._tables()
        mine = {cid for table in tables for address, cid, _n in table.rows if address == client}
        answers = []
        for table in tables:
            if any(cid in mine for _a, cid, _n in table.rows):
                answers += [address for address, _cid, names in table.rows if wanted in names]
        return answers
