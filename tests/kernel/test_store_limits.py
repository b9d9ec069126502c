"""A root on a full disk, a read-only root, a root that is not a directory (issue 11):
listing works, the commands that free space work, and every OS error is one line
naming the path and the cause.  Each root is a small tmpfs of its own."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import PermissionDenied
from dockyard.store import reserve
from dockyard.store.db import Database
from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root

MIGRATIONS = ["CREATE TABLE t (x TEXT)"]


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "64m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        # a container's supervisor may still be closing its files: busy for a moment
        for _ in range(50):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:  # still busy (a failed test's open database): detached all the same
            subprocess.run(["umount", "-l", str(path)], check=True)


@contextlib.contextmanager
def tmpfs_root(tmp_path: Path, size: str = "64m") -> Iterator[Dockyard]:
    """The CLI with its root on a tmpfs; everything it made is removed, then unmounted."""
    with tmpfs(tmp_path / "fs", size) as fs:
        cli = Dockyard(fs / "root", tmp_path / "docker-config")
        try:
            yield cli
        finally:
            writable(fs)
            (fs / "filler").unlink(missing_ok=True)
            cli.remove_everything()


def fill(fs: Path) -> None:
    """Use every free byte of ``fs`` (a file ``filler``)."""
    with open(fs / "filler", "ab", buffering=0) as handle:
        free = reserve.free_bytes(fs)
        with contextlib.suppress(OSError):
            os.posix_fallocate(handle.fileno(), 0, max(free - (1 << 20), 1))
        for chunk in (1 << 16, 1 << 12):
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    assert reserve.free_bytes(fs) < 1 << 12


def read_only(fs: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)


def writable(fs: Path) -> None:
    subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)


def one_line_error(result: subprocess.CompletedProcess[str], *parts: str) -> str:
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def test_full_disk_rm_rmi_and_prune_free_space(tmp_path: Path, rootfs_tar: Path) -> None:
    with tmpfs_root(tmp_path) as dy:
        fs = dy.root.parent
        dy("import", "-c", 'CMD ["sh"]', str(rootfs_tar), "box:1")
        dy("import", str(rootfs_tar), "other:1")
        dy("run", "--name", "ran", "box:1", "true")
        dy("run", "-d", "--name", "up", "box:1", "sleep", "300")
        dy("create", "--name", "made", "box:1", "true")
        dy("volume", "create", "vol")
        assert (dy.root / reserve.NAME).stat().st_blocks * 512 >= reserve.SIZE
        fill(fs)

        assert dy("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["made", "up", "ran"]
        assert dy("rm", "-f", "up").stdout == "up\n"
        assert dy("container", "prune", "-f").returncode == 0
        assert dy("ps", "-a", "-q").stdout == ""
        assert dy("volume", "rm", "vol").stdout == "vol\n"
        dy("rmi", "box:1")
        dy("image", "prune", "-a", "-f")
        assert dy("images", "-q").stdout == ""
        assert dy("system", "check").stdout == "ok: store consistent\n"
        assert reserve.free_bytes(fs) > 2 * reserve.SIZE  # the layers and the reserve

        # once there is room again, the reserve is made again
        (fs / "filler").unlink()
        dy("ps")
        assert (dy.root / reserve.NAME).exists()


def test_full_disk_import_and_load_are_one_line_and_leave_nothing(
        tmp_path: Path, rootfs_tar: Path) -> None:
    with tmpfs_root(tmp_path) as dy:
        fs = dy.root.parent
        archive = tmp_path / "box.tar"
        dy("import", str(rootfs_tar), "box:1")
        dy("save", "-o", str(archive), "box:1")
        dy("rmi", "box:1")
        fill(fs)
        ingest = dy.root / "content" / "ingest"
        for command in (["import", str(rootfs_tar), "box:1"], ["load", "-i", str(archive)]):
            one_line_error(dy(*command, check=False), str(ingest), "no space left on device")
            assert list(ingest.iterdir()) == []
        assert dy("images", "-q").stdout == ""
        assert dy("system", "check").stdout == "ok: store consistent\n"
        (fs / "filler").unlink()
        dy("load", "-i", str(archive))
        assert dy("images", "--format", "{{.Repository}}").stdout == "box\n"


def test_read_only_root_lists_and_refuses_writes_in_one_line(tmp_path: Path,
                                                               rootfs_tar: Path) -> None:
    with tmpfs_root(tmp_path) as dy:
        fs = dy.root.parent
        dy("import", "-c", 'CMD ["sh"]', str(rootfs_tar), "box:1")
        # no container ever started: the default network has no record yet, and network
        # ls shows the would-be default without trying to save it
        dy("create", "--name", "made", "box:1", "echo", "hi")
        dy("volume", "create", "vol")
        read_only(fs)

        assert dy("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout == "made Created\n"
        assert dy("images", "--format", "{{.Repository}}:{{.Tag}}").stdout == "box:1\n"
        assert dy("inspect", "-f", "{{.Name}}", "made").stdout == "/made\n"
        assert dy("image", "inspect", "-f", "{{.Config.Cmd}}", "box:1").stdout == "[sh]\n"
        assert dy("volume", "ls", "-q").stdout == "vol\n"
        assert "bridge" in dy("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert dy("logs", "made").stdout == ""
        assert dy("system", "df").returncode == 0

        run = dy("run", "box:1", "true", check=False)
        assert run.returncode == 125
        one_line_error(run, str(dy.root), "read-only file system")
        one_line_error(dy("rm", "made", check=False), str(dy.root / "metadata.db"),
                       "read-only file system")
        one_line_error(dy("tag", "box:1", "box:2", check=False), "read-only file system")
        one_line_error(dy("volume", "create", "other", check=False), str(dy.root),
                       "read-only file system")

        writable(fs)
        assert dy("rm", "made").stdout == "made\n"
        assert dy("system", "check").stdout == "ok: store consistent\n"


def test_root_that_is_not_a_directory(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("x")
    dy = Dockyard(plain, tmp_path / "docker-config")
    assert one_line_error(dy("ps", check=False)) == f"Error: --root {plain}: not a directory"
    below = plain / "root"
    assert (one_line_error(dy("images", root=below, check=False))
            == f"Error: --root {below}: not a directory")


def _crash_leaving_wal(path: Path) -> None:
    """Write a row in a child that dies without closing: -wal and -shm stay."""
    pid = os.fork()
    if pid == 0:
        try:
            db = Database(path)
            db.migrate("test", MIGRATIONS)
            with db.transaction("adding") as conn:
                conn.execute("INSERT INTO t VALUES ('in the wal')")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def test_database_reads_a_read_only_root_with_or_without_its_wal(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", "8m") as fs:
        try:
            # closing the last connection checkpoints the WAL and removes -wal and -shm
            with contextlib.closing(Database(fs / "clean.db")) as db:
                db.migrate("test", MIGRATIONS)
                with db.transaction("adding") as conn:
                    conn.execute("INSERT INTO t VALUES ('checkpointed')")
            _crash_leaving_wal(fs / "crashed.db")
            assert (fs / "crashed.db-wal").exists() and (fs / "crashed.db-shm").exists()
            read_only(fs)

            for name, row in (("clean.db", "checkpointed"), ("crashed.db", "in the wal")):
                with contextlib.closing(Database(fs / name)) as db:
                    db.migrate("test", MIGRATIONS)  # nothing pending: nothing written
                    assert db.read_only == "read-only file system"
                    assert db.query("SELECT x FROM t") == [(row,)]
                    refused = pytest.raises(PermissionDenied,
                                            match=f"{fs / name}: read-only file system")
                    with refused, db.transaction("adding") as conn:
                        conn.execute("INSERT INTO t VALUES ('more')")
                    with pytest.raises(PermissionDenied, match="read-only file system"):
                        db.migrate("test", [*MIGRATIONS, "CREATE TABLE u (y)"])
        finally:
            writable(fs)


def test_commit_on_a_full_disk_gives_up_the_reserve_and_replays(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", "8m") as fs:
        reserve.ensure(fs)
        assert (fs / reserve.NAME).exists()
        with contextlib.closing(Database(fs / "metadata.db")) as db:
            db.migrate("test", MIGRATIONS)
            with db.transaction("adding") as conn:
                conn.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 500)
            db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # an empty WAL to write into
            fill(fs)
            # the commit finds the disk full, SQLite rolls back; the reserve is given
            # up and the statements replayed
            with db.transaction("deleting") as conn:
                assert conn.execute("SELECT count(*) FROM t").fetchone() == (500,)
                assert conn.execute("DELETE FROM t").rowcount == 500
            assert db.query("SELECT count(*) FROM t") == [(0,)]
            assert not (fs / reserve.NAME).exists()


def test_root_the_user_may_not_use_is_one_line(tmp_path: Path) -> None:
    """EACCES: an unprivileged user pointing --root into root's private directory."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (util-linux)")
    os.chmod(tmp_path, 0o700)
    dy = Dockyard(tmp_path / "root", tmp_path / "docker-config")
    dy.argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *dy.argv]
    assert (one_line_error(dy("ps", check=False))
            == f"Error: --root {tmp_path / 'root'}: permission denied")
