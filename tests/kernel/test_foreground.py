"""A foreground ``run``: its output comes straight from the container's stdio (not
from a log that rotates under it), ``logs -f`` follows every rotation, and ``--rm``
takes the container's anonymous volumes with it, as Docker does."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root

BURST = "i=0; while [ $i -lt 500 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done"


@pytest.fixture
def dy(box: Dockyard) -> Dockyard:
    return box  # its teardown removes containers, networks and volumes


def test_foreground_run_shows_every_line_whatever_the_log_rotation(dy: Dockyard) -> None:
    result = dy("run", "--name", "burst", "--log-opt", "max-size=1k", "--log-opt",
                "max-file=2", "box:1", "sh", "-c", BURST + "; exit 4", check=False)
    assert result.returncode == 4
    assert result.stdout.split() == [f"out-{i}" for i in range(500)]  # stdout stays stdout
    assert result.stderr.split() == [f"err-{i}" for i in range(500)]  # and stderr stderr
    logs = dy("logs", "burst")  # the log itself keeps two small files only
    kept = logs.stdout.split() + logs.stderr.split()
    assert 0 < len(kept) < 100 and {"out-499", "err-499"} & set(kept)


def test_foreground_run_of_a_restarting_container_ends_with_its_first_exit(
        dy: Dockyard) -> None:
    """Docker's run waits for the next exit, not for a policy that never gives up."""
    result = subprocess.run([*dy.argv, "--root", str(dy.root), "run", "--name", "loop",
                             "--restart", "always", "box:1", "sh", "-c", "echo once; exit 3"],
                            env=dy.env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 3 and result.stdout == "once\n"
    dy("rm", "-f", "loop")


def test_logs_follow_reads_every_rotated_file(dy: Dockyard) -> None:
    """Many rotations between two reads of the follower: each file is read to its end
    and the next one after it, by inode, not only the newest."""
    dy("run", "-d", "--name", "rotor", "--log-opt", "max-size=1k", "--log-opt", "max-file=100",
       "box:1", "sh", "-c", "echo ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; " +
       BURST.replace(" >&2", ""))
    follower = subprocess.Popen([*dy.argv, "--root", str(dy.root), "logs", "-f", "rotor"],
                                env=dy.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "ready\n"  # it follows from here on
        # detached: a touch not yet gone when the container exits is killed (137)
        dy("exec", "-d", "rotor", "touch", "/tmp/go")
        out, _ = follower.communicate(timeout=120)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    expected = [item for i in range(500) for item in (f"out-{i}", f"err-{i}")]
    assert dy("logs", "rotor").stdout.split() == ["ready", *expected]  # all files kept
    assert out.split() == expected


def test_logs_follow_from_a_rotated_history(dy: Dockyard) -> None:
    dy("run", "--name", "old", "--log-opt", "max-size=1k", "--log-opt", "max-file=100",
       "box:1", "sh", "-c", BURST)
    out = dy("logs", "-f", "old")
    assert out.stdout.split() == [f"out-{i}" for i in range(500)]
    assert out.stderr.split() == [f"err-{i}" for i in range(500)]


@pytest.mark.parametrize("how", ["-v", "image VOLUME"])
def test_foreground_rm_removes_anonymous_volumes_and_keeps_named_ones(
        dy: Dockyard, tmp_path: Path, how: str) -> None:
    image = "box:1"
    if how == "image VOLUME":
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text("FROM box:1\nVOLUME /data\n")
        dy("build", "-t", "vol:1", str(context))
        image = "vol:1"
    dy("volume", "create", "keep")
    for _ in range(5):
        args = ["-v", "/anon"] if how == "-v" else []
        result = dy("run", "--rm", *args, "-v", "keep:/named", image, "sh", "-c",
                    "touch /named/x; exit 2", check=False)
        assert result.returncode == 2, result.stderr
        assert dy("ps", "-a", "-q").stdout == ""
        assert dy("volume", "ls", "-q").stdout.split() == ["keep"]
    failed = dy("run", "--rm", "-v", "/anon", image, "no-such-command", check=False)
    assert failed.returncode == 127
    assert dy("ps", "-a", "-q").stdout == ""
    assert dy("volume", "ls", "-q").stdout.split() == ["keep"]
    assert list((tmp_path / "root" / "containers").iterdir()) == []


def test_detached_rm_removes_anonymous_volumes(dy: Dockyard) -> None:
    for _ in range(3):
        dy("run", "-d", "--rm", "-v", "/anon", "box:1", "true")
    deadline = time.monotonic() + 30
    while dy("ps", "-a", "-q").stdout or dy("volume", "ls", "-q").stdout:
        assert time.monotonic() < deadline, "the --rm containers and volumes stayed"
        time.sleep(0.05)
