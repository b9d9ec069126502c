"""Containers as a user runs them: real busybox containers through the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root


@pytest.fixture
def dy(box: Dockyard) -> Dockyard:
    return box


def inspect(dy: Dockyard, name: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(dy("container", "inspect", name).stdout)[0]
    return doc


def test_run_passes_output_and_exit_code(dy: Dockyard) -> None:
    result = dy("run", "--name", "c1", "box:1", "sh", "-c", "echo out; echo err >&2; exit 3",
                check=False)
    assert result.returncode == 3
    assert result.stdout == "out\n" and result.stderr == "err\n"
    assert dy("logs", "c1").stdout == "out\n"
    state = inspect(dy, "c1")["State"]
    assert isinstance(state, dict) and state["ExitCode"] == 3 and state["Status"] == "exited"


def test_command_not_found_is_127(dy: Dockyard) -> None:
    result = dy("run", "--rm", "box:1", "no-such-command", check=False)
    assert result.returncode == 127
    assert "executable file not found" in result.stderr
    assert dy("ps", "-a", "-q").stdout == ""


def test_detached_container_survives_its_cli_and_stops(dy: Dockyard) -> None:
    container_id = dy("run", "-d", "--name", "bg", "box:1", "sleep", "300").stdout.strip()
    assert len(container_id) == 64
    listed = dy("ps", "--format", "{{.Names}} {{.Status}}").stdout.strip()
    assert listed.startswith("bg Up")
    assert dy("ps", "--format", "{{.Command}}").stdout.strip() == '"sleep 300"'
    started = time.monotonic()
    dy("stop", "-t", "1", "bg")  # sleep as pid 1 ignores SIGTERM: SIGKILL after 1 s
    assert time.monotonic() - started >= 1
    state = inspect(dy, "bg")["State"]
    assert isinstance(state, dict) and state["ExitCode"] == 137
    assert dy("ps", "-q").stdout == ""


def test_stop_signal_reaches_a_handler(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "trap", "box:1", "sh", "-c",
       "trap 'echo got-term; exit 0' TERM; while true; do sleep 0.1; done")
    time.sleep(0.3)
    dy("stop", "-t", "5", "trap")
    assert dy("logs", "trap").stdout == "got-term\n"
    state = inspect(dy, "trap")["State"]
    assert isinstance(state, dict) and state["ExitCode"] == 0


def test_logs_follow_while_writing(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "talker", "box:1", "sh", "-c",
       "for i in 1 2 3; do echo line$i; sleep 0.2; done")
    result = dy("logs", "-f", "talker")
    assert result.stdout.split() == ["line1", "line2", "line3"]
    assert dy("logs", "--tail", "1", "talker").stdout == "line3\n"


def test_restart_policy_counts(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "box:1", "sh", "-c",
       "echo try; exit 1")
    deadline = time.monotonic() + 10
    while inspect(dy, "flaky")["State"]["Status"] != "exited":  # type: ignore[index]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert inspect(dy, "flaky")["RestartCount"] == 2
    assert dy("logs", "flaky").stdout.split() == ["try", "try", "try"]


def test_rm_leaves_nothing(dy: Dockyard, tmp_path: Path) -> None:
    dy("run", "--rm", "--name", "tmp", "box:1", "true")
    assert dy("ps", "-a", "-q").stdout == ""
    assert list((tmp_path / "root" / "containers").iterdir()) == []
    dy("run", "-d", "--rm", "--name", "tmp2", "box:1", "true")
    deadline = time.monotonic() + 10
    while dy("ps", "-a", "-q").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_running_container_cannot_be_removed_without_force(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "busy", "box:1", "sleep", "300")
    result = dy("rm", "busy", check=False)
    assert result.returncode == 1 and "You cannot remove a running container" in result.stderr
    refused = dy("rmi", "box:1", check=False)
    assert refused.returncode == 1 and "is using its referenced image" in refused.stderr
    dy("rm", "-f", "busy")


def test_name_conflict(dy: Dockyard) -> None:
    dy("create", "--name", "dup", "box:1")
    result = dy("create", "--name", "dup", "box:1", check=False)
    assert result.returncode == 1 and 'The container name "/dup" is already in use' in \
        result.stderr


def test_limits_and_options_inside(dy: Dockyard) -> None:
    out = dy("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "--hostname", "hh",
             "--memory", "32m", "--pids-limit", "9", "--read-only", "--cap-drop", "ALL",
             "box:1", "sh", "-c",
             "echo $A; pwd; id -u; hostname; cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
             "/sys/fs/cgroup/pids/pids.max; touch /x 2>/dev/null || echo ro").stdout.split()
    assert out == ["1", "/tmp", "65534", "hh", str(32 * 1024 * 1024), "9", "ro"]


def test_a_memory_reservation_is_the_cgroup_soft_limit(dy: Dockyard) -> None:
    """--memory-reservation as Docker's MemoryReservation: the kernel's soft limit
    (v1 soft_limit_in_bytes, v2 memory.low) and inspect's HostConfig."""
    dy("run", "-d", "--name", "soft", "--memory", "64m", "--memory-reservation", "24m",
       "box:1", "sleep", "300")
    host = inspect(dy, "soft")["HostConfig"]
    assert isinstance(host, dict) and host["MemoryReservation"] == 24 << 20
    read = ("cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes 2>/dev/null || "
            "cat /sys/fs/cgroup/memory.low")
    assert dy("exec", "soft", "sh", "-c", read).stdout.split() == [str(24 << 20)]
    dy("update", "--memory-reservation", "12m", "soft")  # on the running container
    assert dy("exec", "soft", "sh", "-c", read).stdout.split() == [str(12 << 20)]
    refused = dy("update", "--memory", "8m", "soft", check=False)  # below the reservation
    assert refused.returncode != 0 and "memory reservation limit" in refused.stderr
    refused = dy("run", "--rm", "--memory-reservation", "1m", "box:1", "true", check=False)
    assert refused.returncode == 125 and "Minimum memory reservation allowed is 6MB" in \
        refused.stderr


def test_oom_kill_is_reported(dy: Dockyard) -> None:
    result = dy("run", "--name", "hog", "--memory", "16m", "--memory-swap", "16m", "box:1",
                "sh", "-c", "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo $x | wc -c",
                check=False)
    assert result.returncode == 137
    state = inspect(dy, "hog")["State"]
    assert isinstance(state, dict) and state["OOMKilled"] is True


def test_state_is_consistent_after_everything_is_killed(dy: Dockyard) -> None:
    """kill -9 of the supervisor, its zygote and the container's init at once: the next
    command records the exit as Docker does (255: the status died with the init's
    parent), does the exit hook's work (rootfs unmounted, runtime state gone), the store
    checks clean, and the container starts again."""
    from dockyard.supervise.process import start_time

    dy("run", "-d", "--name", "victim", "box:1", "sleep", "300")
    doc = inspect(dy, "victim")
    bundle = Path(str(doc["LogPath"])).parent
    status = json.loads((bundle / "status.json").read_text())
    supervisor, init = status["supervisor_pid"], status["pid"]
    assert (start_time(supervisor), start_time(init)) == (status["supervisor_start"],
                                                         status["pid_start"])
    with open(f"/proc/{supervisor}/stat") as handle:
        parent = int(handle.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{parent}/cmdline", "rb") as handle:
        if b"dockyard.supervise.zygote" in handle.read():
            os.kill(parent, signal.SIGKILL)  # the zygote that forked it
    os.kill(supervisor, signal.SIGKILL)
    os.kill(init, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while start_time(init) is not None or start_time(supervisor) is not None:
        assert time.monotonic() < deadline, "the killed processes did not go"
        time.sleep(0.02)
    state = inspect(dy, "victim")["State"]
    assert isinstance(state, dict)
    assert (state["Status"], state["Running"], state["Pid"], state["ExitCode"]) == \
        ("exited", False, 0, 255)
    assert not os.path.ismount(bundle / "rootfs")
    assert dy("system", "check").stdout.strip() == "ok: store consistent"
    assert dy("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.startswith(
        "victim Exited (255) ")
    dy("start", "victim")
    state = inspect(dy, "victim")["State"]
    assert isinstance(state, dict) and state["Running"] and state["Pid"] not in (0, init)
    dy("rm", "-f", "victim")
    assert not bundle.exists()
    assert dy("system", "check").stdout.strip() == "ok: store consistent"


def test_exec_joins_the_container(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "ex", "--hostname", "exhost", "box:1", "sleep", "300")
    result = dy("exec", "-e", "X=7", "-w", "/tmp", "-u", "nobody", "ex", "sh", "-c",
                "echo $X $(pwd) $(id -u) $(hostname); exit 4", check=False)
    assert result.returncode == 4
    assert result.stdout.split() == ["7", "/tmp", "65534", "exhost"]
    titles = dy("top", "ex").stdout.splitlines()[0].split()
    assert "PID" in titles and "sleep 300" in dy("top", "ex").stdout


def test_pause_unpause_rename_update_stats(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "p1", "box:1", "sleep", "300")
    dy("pause", "p1")
    assert "(Paused)" in dy("ps", "--format", "{{.Status}}").stdout
    state = inspect(dy, "p1")["State"]
    assert isinstance(state, dict) and state["Paused"] is True
    dy("unpause", "p1")
    assert dy("ps", "--format", "{{.Status}}").stdout.startswith("Up ")
    assert dy("inspect", "-f", "{{.State.Paused}}", "p1").stdout.strip() == "false"
    dy("rename", "p1", "p2")
    dy("update", "--memory", "48m", "--pids-limit", "11", "p2")
    out = dy("exec", "p2", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
             "/sys/fs/cgroup/pids/pids.max").stdout.split()
    assert out == [str(48 * 1024 * 1024), "11"]
    stats = dy("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}").stdout.split()
    assert stats == ["p2", "1"]


def test_cp_diff_commit_export_round_trip(dy: Dockyard, tmp_path: Path) -> None:
    dy("run", "-d", "--name", "fs", "box:1", "sleep", "300")
    dy("exec", "fs", "sh", "-c", "echo data > /root/new; rm /bin/ls")
    host_file = tmp_path / "in.txt"
    host_file.write_text("from host\n")
    dy("cp", str(host_file), "fs:/tmp")
    assert dy("exec", "fs", "cat", "/tmp/in.txt").stdout == "from host\n"
    dy("cp", "fs:/root/new", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "data\n"
    changes = dy("diff", "fs").stdout.splitlines()
    assert {"A /root/new", "D /bin/ls", "A /tmp/in.txt"} <= set(changes)
    image_id = dy("commit", "-m", "snapshot", "fs", "snap:1").stdout.strip()
    out = dy("run", "--rm", "snap:1", "sh", "-c", "cat /root/new; ls /bin/ls || echo no-ls",
             check=False).stdout.split()
    assert out == ["data", "no-ls"]
    assert json.loads(dy("image", "inspect", "snap:1").stdout)[0]["Id"] == image_id
    exported = tmp_path / "fs.tar"
    dy("export", "-o", str(exported), "fs")
    import tarfile

    with tarfile.open(exported) as archive:
        names = archive.getnames()
    assert "root/new" in names and "bin/ls" not in names


def test_container_prune(dy: Dockyard) -> None:
    dy("run", "--name", "done1", "box:1", "true")
    dy("run", "-d", "--name", "alive", "box:1", "sleep", "300")
    out = dy("container", "prune", "-f").stdout
    assert "Deleted Containers:" in out
    assert dy("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["alive"]


def test_interactive_stdin_reaches_the_container(dy: Dockyard) -> None:
    result = dy("run", "-i", "--rm", "box:1", "sh", input=b"echo from-stdin; exit 6\n",
                check=False)
    assert result.returncode == 6
    assert result.stdout == "from-stdin\n"


def test_tty_session_gets_a_terminal_and_resize(dy: Dockyard) -> None:
    """Driven through a real pty: -it gives the container a terminal of our size, and a
    later resize reaches it as SIGWINCH."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    pid, master = pty.fork()
    if pid == 0:  # the child: the dockyard CLI on the pty's slave side
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        os.execv(dy.argv[0], [*dy.argv, "--root", str(dy.root), "run", "-it", "--rm",
                              "box:1", "sh", "-c",
                              "tty; stty size; trap 'stty size; exit 0' WINCH; "
                              "echo ready; while true; do sleep 0.05; done"])
    output = b""
    resized = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if b"ready" in output and not resized:
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
            os.kill(pid, signal.SIGWINCH)
            resized = True
    _, status = os.waitpid(pid, 0)
    os.close(master)
    text = output.decode(errors="replace")
    assert "/dev/pts/" in text and "30 100" in text, text
    assert "40 120" in text, text
    assert os.waitstatus_to_exitcode(status) == 0


def test_log_rotation(dy: Dockyard, tmp_path: Path) -> None:
    dy("run", "--name", "chatty", "--log-opt", "max-size=2k", "--log-opt", "max-file=3",
       "box:1", "sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done")
    doc = inspect(dy, "chatty")
    log = Path(str(doc["LogPath"]))
    rotated = sorted(p.name for p in log.parent.glob("container.log*"))
    assert rotated == ["container.log", "container.log.1", "container.log.2"]
    assert all(p.stat().st_size <= 2048 for p in log.parent.glob("container.log*"))
    lines = dy("logs", "chatty").stdout.split()
    assert lines[-1] == "line-199" and len(lines) < 200
    assert lines == [f"line-{i}" for i in range(200 - len(lines), 200)]


def test_init_reaps_zombies_and_forwards_signals(dy: Dockyard) -> None:
    dy("run", "-d", "--init", "--name", "reaper", "box:1", "sh", "-c",
       "trap 'echo bye; exit 0' TERM; for i in 1 2 3 4 5; do (sleep 0.01 &); done; "
       "while true; do sleep 0.1; done")
    time.sleep(1)
    listing = dy("exec", "reaper", "ps", "-o", "pid,ppid,stat,comm").stdout
    assert "docker-init" in listing.splitlines()[1]  # pid 1 is the init
    # orphans are re-parented to pid 1, which must reap them (a zombie whose parent
    # is the shell is just the loop's `sleep` caught between exit and wait)
    assert not [line for line in listing.splitlines()[1:]
                if line.split()[1] == "1" and line.split()[2].startswith("Z")]
    dy("stop", "-t", "5", "reaper")
    assert dy("logs", "reaper").stdout == "bye\n"
    state = inspect(dy, "reaper")["State"]
    assert isinstance(state, dict) and state["ExitCode"] == 0


def test_restore_brings_back_always_containers(dy: Dockyard) -> None:
    dy.env["DOCKYARD_ZYGOTE_WATCHDOG"] = "0"  # a host crash: no zygote survives it
    dy("run", "-d", "--restart", "always", "--name", "phoenix", "box:1", "sleep", "300")
    dy("run", "-d", "--restart", "unless-stopped", "--name", "stopped", "box:1", "sleep", "300")
    dy("stop", "-t", "0", "stopped")
    doc = inspect(dy, "phoenix")
    status = json.loads((Path(str(doc["LogPath"])).parent / "status.json").read_text())
    old_pid = status["pid"]
    os.kill(status["supervisor_pid"], signal.SIGKILL)  # the host "crashes"
    os.kill(old_pid, signal.SIGKILL)
    time.sleep(0.3)
    # (any command would now notice the dead supervisor and apply the policy; restore
    # is the one run at boot, and says what it brought back)
    restored = dy("system", "restore").stdout.split()
    assert restored == [doc["Id"]]
    state = inspect(dy, "phoenix")["State"]
    assert isinstance(state, dict) and state["Running"] and state["Pid"] != old_pid
    assert inspect(dy, "stopped")["State"]["Status"] == "exited"  # type: ignore[index]


def test_healthcheck_goes_healthy_then_unhealthy(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "doc", "--health-cmd", "test -e /tmp/ok",
       "--health-interval", "200ms", "--health-retries", "2", "box:1", "sh", "-c",
       "touch /tmp/ok; sleep 1; rm /tmp/ok; sleep 300")

    def health() -> dict[str, object]:
        state = inspect(dy, "doc")["State"]
        assert isinstance(state, dict)
        value = state["Health"]
        assert isinstance(value, dict)
        return value

    deadline = time.monotonic() + 10
    while health()["Status"] != "healthy":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert "(healthy)" in dy("ps", "--format", "{{.Status}}").stdout
    while health()["Status"] != "unhealthy":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert int(str(health()["FailingStreak"])) >= 2
    log = health()["Log"]
    assert isinstance(log, list) and log[-1]["ExitCode"] == 1


def _healthy_within(dy: Dockyard, name: str, seconds: float) -> dict[str, Any]:
    """The container's ``State.Health`` once it reports healthy (fails after
    ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        state = inspect(dy, name)["State"]
        assert isinstance(state, dict) and isinstance(state["Health"], dict)
        health: dict[str, Any] = state["Health"]
        if health["Status"] == "healthy":
            return health
        assert time.monotonic() < deadline, health
        time.sleep(0.1)


def test_a_start_interval_checks_often_while_the_container_starts(dy: Dockyard) -> None:
    """Docker 25's StartInterval: within the start period, a still-starting container is
    checked every start interval, not every (here one-minute) interval; inspect shows
    the healthcheck as Docker does, durations in nanoseconds."""
    dy("run", "-d", "--name", "quick", "--health-cmd", "test -e /tmp/ok",
       "--health-interval", "60s", "--health-start-period", "30s",
       "--health-start-interval", "200ms", "box:1", "sh", "-c",
       "sleep 0.5; touch /tmp/ok; sleep 300")
    config = inspect(dy, "quick")["Config"]
    assert isinstance(config, dict)
    assert config["Healthcheck"] == {  # what was given (the rest is Docker's default)
        "Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 60 * 10**9,
        "StartPeriod": 30 * 10**9, "StartInterval": 2 * 10**8}
    log = _healthy_within(dy, "quick", 10)["Log"]
    assert isinstance(log, list) and log[0]["ExitCode"] == 1  # checked before it was ready


def test_health_flags_without_a_command_tune_the_images_check(dy: Dockyard,
                                                                tmp_path: Path) -> None:
    """As dockerd merges them: ``--health-interval`` alone keeps the image's test and
    retries and runs it at the new pace; ``--health-cmd`` alone keeps the image's
    timings; inspect shows the merged check."""
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(
        "FROM box:1\nHEALTHCHECK --interval=60s --retries=2 CMD test -e /tmp/ok\n")
    dy("build", "-q", "-t", "checked:1", str(tmp_path / "ctx"))
    dy("run", "-d", "--name", "paced", "--health-interval", "200ms", "checked:1", "sh", "-c",
       "touch /tmp/ok; sleep 300")
    config = inspect(dy, "paced")["Config"]
    assert isinstance(config, dict)
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "test -e /tmp/ok"],
                                     "Interval": 2 * 10**8, "Retries": 2}
    _healthy_within(dy, "paced", 5)  # the image's 60 s would not be here yet
    dy("create", "--name", "own", "--health-cmd", "true", "checked:1")
    config = inspect(dy, "own")["Config"]
    assert isinstance(config, dict)
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 60 * 10**9,
                                     "Retries": 2}
    # kept merged at create, as dockerd keeps it: the image may go
    dy("rmi", "-f", "checked:1")
    assert inspect(dy, "paced")["Config"]["Healthcheck"] == {  # type: ignore[index]
        "Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 2 * 10**8, "Retries": 2}
    dy("start", "own")
    assert inspect(dy, "own")["State"]["Health"]["Status"] == "starting"  # type: ignore[index]
    refused = dy("create", "--no-healthcheck", "--health-cmd", "true", "box:1", check=False)
    assert refused.returncode == 125
    assert "--no-healthcheck conflicts with --health-* options" in refused.stderr


def test_start_attached_streams_and_exits_with_the_containers_code(dy: Dockyard) -> None:
    """``start -a``: the output from the first byte, stdout and stderr apart, the
    container's exit code; ``-i`` feeds stdin to a container made with ``-i``; a
    running one is attached to; one made with ``--rm`` goes after; several at once
    are refused, as Docker."""
    dy("create", "--name", "once", "box:1", "sh", "-c", "echo out; echo err >&2; exit 3")
    result = dy("start", "-a", "once", check=False)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    again = dy("start", "--attach", "once", check=False)  # (the next start, the same)
    assert (again.returncode, again.stdout) == (3, "out\n")
    dy("create", "-i", "--name", "cat", "box:1", "cat")
    fed = dy("start", "-ai", "cat", input=b"fed in\n")
    assert fed.stdout == "fed in\n"
    dy("run", "-d", "--name", "late", "box:1", "sh", "-c", "sleep 0.5; echo late; exit 4")
    joined = dy("start", "-a", "late", check=False)
    assert (joined.returncode, joined.stdout) == (4, "late\n")
    dy("create", "--rm", "--name", "gone", "box:1", "true")
    assert dy("start", "-a", "gone").returncode == 0
    assert dy("ps", "-a", "--filter", "name=gone", "-q").stdout == ""
    refused = dy("start", "-a", "once", "cat", check=False)
    assert refused.returncode == 1
    assert "you cannot start and attach multiple containers at once" in refused.stderr


def test_restart_command(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "again", "box:1", "sh", "-c", "echo started; sleep 300")
    first = inspect(dy, "again")["State"]
    dy("restart", "-t", "0", "again")
    second = inspect(dy, "again")["State"]
    assert isinstance(first, dict) and isinstance(second, dict)
    assert second["Running"] and second["Pid"] != first["Pid"]
    deadline = time.monotonic() + 5
    while dy("logs", "again").stdout.split() != ["started", "started"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_system_check_finds_and_repairs_crash_leftovers(dy: Dockyard, tmp_path: Path) -> None:
    dy.env["DOCKYARD_ZYGOTE_WATCHDOG"] = "0"  # a host crash: no zygote survives it
    dy("run", "-d", "--name", "crashy", "box:1", "sleep", "300")
    doc = inspect(dy, "crashy")
    bundle = Path(str(doc["LogPath"])).parent
    status = json.loads((bundle / "status.json").read_text())
    os.kill(status["supervisor_pid"], signal.SIGKILL)  # no exit hook will run
    os.kill(status["pid"], signal.SIGKILL)
    time.sleep(0.3)
    (tmp_path / "root" / "containers" / ("f" * 64)).mkdir()  # files without a record
    result = dy("system", "check", check=False)
    assert result.returncode == 1
    assert "rootfs mounted but not running" in result.stdout
    assert "no record" in result.stdout
    dy("system", "check", "--repair", check=False)
    assert dy("system", "check").stdout.strip() == "ok: store consistent"
    assert not os.path.ismount(bundle / "rootfs")


def test_etc_files_are_the_containers_own(dy: Dockyard) -> None:
    out = dy("run", "--rm", "--hostname", "web1", "box:1", "sh", "-c",
             "cat /etc/hostname; grep web1 /etc/hosts; grep -c localhost /etc/hosts").stdout
    lines = out.splitlines()
    # as Docker writes it: the hostname maps to the container's own address on its network
    address, name = lines[1].split("\t")
    assert lines[0] == "web1" and name == "web1" and int(lines[2]) >= 1
    assert address.startswith(("10.214.", "10.213."))
    none = dy("run", "--rm", "--network", "none", "--hostname", "solo", "box:1", "grep",
              "solo", "/etc/hosts").stdout
    assert none == "127.0.1.1\tsolo\n"  # no network: the loopback alias
    host = dy("run", "--rm", "--network", "host", "box:1", "cat", "/etc/hosts").stdout
    assert host == Path("/etc/hosts").read_text()


def test_exec_of_a_missing_or_non_executable_command_exits_127_or_126(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "target", "box:1", "sh", "-c",
       "echo x > /tmp/plain; sleep 300")
    missing = dy("exec", "target", "no-such-command", check=False)
    assert missing.returncode == 127, missing.stderr
    assert 'exec: "no-such-command": executable file not found in $PATH' in missing.stderr
    plain = dy("exec", "target", "/tmp/plain", check=False)
    assert plain.returncode == 126, plain.stderr
    assert "permission denied" in plain.stderr
    assert dy("exec", "target", "sh", "-c", "exit 7", check=False).returncode == 7
    assert dy("exec", "target", "sh", "-c", "kill -9 $$", check=False).returncode == 137


def test_cpus_out_of_range_is_refused_with_dockers_message(dy: Dockyard) -> None:
    count = len(os.sched_getaffinity(0))
    wording = (f"Range of CPUs is from 0.01 to {count}.00, as there are only {count} CPUs "
               "available")
    for value in ("-1", "999"):
        refused = dy("run", "--rm", "--cpus", value, "box:1", "true", check=False)
        assert refused.returncode == 125, refused.stderr
        assert refused.stderr.strip() == f"Error: {wording}"
    garbage = dy("run", "--rm", "--cpus", "lots", "box:1", "true", check=False)
    assert garbage.returncode == 125
    assert 'invalid argument "lots" for "--cpus" flag' in garbage.stderr
    assert dy("ps", "-a", "-q").stdout == ""  # nothing created
    dy("run", "-d", "--name", "cpu", "box:1", "sleep", "300")
    update = dy("update", "--cpus", "999", "cpu", check=False)
    assert update.returncode == 1 and wording in update.stderr
    assert dy("run", "--rm", "--cpus", "0.5", "box:1", "true").returncode == 0


def test_load_of_a_random_file_is_a_one_line_error(dy: Dockyard, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(bytes(range(256)) * 40)
    result = dy("load", "-i", str(junk), check=False)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Error: load: not a valid tar archive")


def test_only_the_run_subcommand_maps_errors_to_125(dy: Dockyard) -> None:
    assert dy("image", "inspect", "runner:1", check=False).returncode == 1
    assert dy("inspect", "run", check=False).returncode == 1
    assert dy("--root", str(dy.root), "run", "no-such-image:1", check=False).returncode == 125
    assert dy("container", "run", "no-such-image:1", check=False).returncode == 125


def test_an_exec_terminal_has_its_size_before_the_command_runs(dy: Dockyard,
                                                               tmp_path: Path) -> None:
    """``docker exec -it`` asks for its window size in the start request; a resize
    after the start races the command.  The size goes into the process the runtime
    starts, so a command that reads it at once sees it, with no resize ever sent."""
    import socket
    import subprocess

    from dockyard.engine.engine import Engine
    from dockyard.runtime.linux.console import receive_fd
    from dockyard.store.layout import Layout

    dy("run", "-d", "--name", "sized", "box:1", "sleep", "60")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "console.sock"))
    listener.listen(1)
    argv = Engine(Layout.for_root(dy.root)).container_ops.exec_argv(
        "sized", ("sh", "-c", "stty size; echo $A $(id -u) $(pwd)"), env=("A=1",),
        user="nobody", workdir="/tmp", tty=True, console_socket=str(tmp_path / "console.sock"),
        console_size=(17, 91), process_file=str(tmp_path / "process.json"))
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        try:
            listener.settimeout(30)
            conn, _ = listener.accept()
            master = receive_fd(conn)
            conn.close()
            output = b""
            with contextlib.suppress(OSError):  # EIO once the command's end closed it
                while chunk := os.read(master, 1024):
                    output += chunk
            os.close(master)
            assert process.wait(timeout=30) == 0, process.stderr
            assert output.split() == [b"17", b"91", b"1", b"65534", b"/tmp"], output
        finally:
            listener.close()
            if process.poll() is None:
                process.kill()


def test_a_container_outlives_its_removed_image_every_layer_kept(dy: Dockyard,
                                                                   tmp_path: Path) -> None:
    """Its image removed (and the base image under it too), a stopped container still
    starts with the image's command: every layer under its snapshot and its image's
    config stay while it does, and go with it."""
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "Dockerfile").write_text(
        'FROM box:1\nRUN echo second > /two\nCMD ["cat", "/two"]\n')
    dy("build", "-q", "-t", "two:1", str(tmp_path / "two"))
    dy("create", "--name", "orphan", "two:1")
    dy("rmi", "-f", "two:1")
    dy("rmi", "-f", "box:1")  # (the base layer is the container's alone now)
    dy("image", "prune", "-a", "-f")
    dy("start", "orphan")
    dy("wait", "orphan")
    assert dy("logs", "orphan").stdout == "second\n"
    assert dy("system", "check").stdout.strip() == "ok: store consistent"
    layers = dy.root / "snapshots" / "layers"
    assert len(list(layers.iterdir())) == 2  # box's and the RUN's
    image_id = str(inspect(dy, "orphan")["Image"])
    config_blob = dy.root / "content" / "blobs" / "sha256" / image_id.split(":")[1]
    assert config_blob.exists()
    dy("rm", "orphan")
    dy("image", "prune", "-a", "-f")  # with it gone, so are they and its config
    assert list(layers.iterdir()) == []
    assert not config_blob.exists()


VOLATILE = {"volatile", "fsync=volatile"}  # (how Linux 6.x shows it)


def _root_mount_options(mountinfo: str) -> set[str]:
    """The super options of the container's root (mountinfo's line for "/")."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if fields[4] == "/":
            return set(line.split(" - ", 1)[1].split()[2].split(","))
    raise AssertionError(f"no root mount in {mountinfo!r}")


def test_a_run_rm_rootfs_is_volatile_and_mountable_again(dy: Dockyard, tmp_path: Path) -> None:
    """``--rm``: overlayfs's ``volatile`` (no sync of the host's file system when it is
    unmounted); a kept container's is not.  A ``cp`` into a created ``--rm`` container
    mounts its snapshot once before the start mounts it again: overlayfs's marker of
    the first (volatile) mount must not make the second fail."""
    rm_root = dy("run", "--rm", "--network", "none", "box:1", "cat", "/proc/self/mountinfo")
    assert VOLATILE & _root_mount_options(rm_root.stdout)
    kept = dy("run", "--name", "kept", "--network", "none", "box:1", "cat",
              "/proc/self/mountinfo")
    assert not VOLATILE & _root_mount_options(kept.stdout)
    dy("rm", "kept")
    dy("create", "--rm", "--name", "twice", "--network", "none", "box:1", "cat", "/in.txt")
    host_file = tmp_path / "in.txt"
    host_file.write_text("copied in\n")
    dy("cp", str(host_file), "twice:/in.txt")
    assert dy("start", "-a", "twice").stdout == "copied in\n"
    assert dy("ps", "-a", "-q", "--filter", "name=twice").stdout == ""
