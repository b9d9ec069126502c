"""Supervision under faults: signals only to verified processes, no hang and no
orphan when a supervisor or a CLI is killed at a named phase, dead supervisors
noticed and their containers re-adopted, Docker's restart semantics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.cli import Dockyard
from dockyard.testing.poll import until

pytestmark = pytest.mark.root


@pytest.fixture
def dy(box: Dockyard) -> Dockyard:
    """Without the zygote's watchdog: these tests show what the next command, ``system
    check`` and ``system restore`` do about a supervisor that died (the watchdog would
    do it first; its own tests are below)."""
    box.env["DOCKYARD_ZYGOTE_WATCHDOG"] = "0"
    return box


def inspect(dy: Dockyard, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(dy("container", "inspect", name).stdout)[0]
    return doc


def bundle_of(dy: Dockyard, name: str) -> Path:
    return Path(str(inspect(dy, name)["LogPath"])).parent


def status_of(bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((bundle / "status.json").read_text())
    return data


def adopted_by_a_new_supervisor(bundle: Path, old: dict[str, Any]) -> dict[str, Any] | None:
    """The status once a supervisor other than ``old``'s runs the container (None
    before; a status being rewritten counts as before)."""
    try:
        now = status_of(bundle)
    except (OSError, ValueError):
        return None
    fresh = now["supervisor_pid"] not in (0, old["supervisor_pid"]) and \
        not gone(now["supervisor_pid"]) and now["state"] == "running"
    return now if fresh else None



def in_own_group(dy: Dockyard, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a session of its own, beside a sentinel in the same process group: a
    signal sent to the CLI's process group (kill(0, ...)) kills the shell and the
    sentinel instead of pytest, and shows as a missing ``sentinel-alive``."""
    script = ('sleep 600 & s=$!; "$@"; rc=$?; kill -0 $s && echo sentinel-alive; '
              'kill $s; wait $s 2>/dev/null; exit $rc')
    return subprocess.run(["sh", "-c", script, "sh", *dy.argv, "--root", str(dy.root), *args],
                          env=dy.env, start_new_session=True, capture_output=True, text=True,
                          timeout=120, check=False)


# --- 1. signals only to recorded, verified live processes ----------------------------

def test_kill_stop_rm_of_a_container_waiting_to_restart_signal_no_process_group(
        dy: Dockyard) -> None:
    names = ("killed", "stopped", "removed")
    try:
        for name in names:
            dy("run", "-d", "--name", name, "--restart", "always", "box:1", "sh", "-c",
               "exit 1")
        bundles = {name: bundle_of(dy, name) for name in names}
        for name, command in zip(names, (("kill",), ("stop",), ("rm", "-f")), strict=True):
            # the back-off has grown past a second: the container spends it "restarting"
            until(f"{name} waiting to restart", lambda name=name: (
                status_of(bundles[name]).get("restart_count", 0) >= 4 and
                status_of(bundles[name])["state"] == "restarting"))
            result = in_own_group(dy, *command, name)
            assert result.returncode == 0, result.stderr
            assert result.stdout.split() == [name, "sentinel-alive"]
        for name in names[:2]:  # Docker: kill and stop cancel the pending restart
            state = inspect(dy, name)["State"]
            assert state["Status"] == "exited" and not state["Restarting"]
        assert sorted(dy("ps", "-a", "--format", "{{.Names}}").stdout.split()) == \
            ["killed", "stopped"]
    finally:  # never from pytest's own process group: a broken rm -f would kill it
        in_own_group(dy, "rm", "-f", *names)


# --- 2. no hang, no orphan: a supervisor or a CLI killed at a named phase ------------

def paused_at(dy: Dockyard, phase: str) -> tuple[Path, dict[str, Any]]:
    """The marker a process paused at ``phase`` wrote (supervise.process.pause_at)."""
    marker: Path = until(f"a pause at {phase}", lambda: next(
        (dy.root / "containers").glob(f"*/pause-{phase}"), None))
    return marker, json.loads(marker.read_text())


def start_cli(dy: Dockyard, *args: str, pause_at: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*dy.argv, "--root", str(dy.root), *args],
                            env={**dy.env, "DOCKYARD_TEST_PAUSE_AT": pause_at},
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_run_d_fails_instead_of_hanging_when_its_supervisor_dies_before_start(
        dy: Dockyard) -> None:
    cli = start_cli(dy, "run", "-d", "--name", "halfway", "box:1", "sleep", "300",
                    pause_at="after-create")
    try:
        _marker, paused = paused_at(dy, "after-create")
        os.kill(paused["pid"], signal.SIGKILL)  # the supervisor, between create and start
        _out, err = cli.communicate(timeout=60)  # a hang fails here, not forever
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 125, err
    assert "supervisor" in err
    until("the created-but-not-started init to go", lambda: gone(paused["container_pid"]))
    assert inspect(dy, "halfway")["State"]["Status"] == "exited"
    assert dy("system", "check").stdout.strip() == "ok: store consistent"
    dy("rm", "halfway")
    assert dy("run", "--rm", "box:1", "echo", "again").stdout == "again\n"


@pytest.mark.parametrize("mode", ["-d", "--rm"])
def test_a_run_cli_killed_after_create_leaves_its_supervisor_running(
        dy: Dockyard, mode: str) -> None:
    args = ["-d"] if mode == "-d" else ["--rm"]
    cli = start_cli(dy, "run", *args, "--name", "orphan", "box:1", "sleep", "300",
                    pause_at="after-create")
    marker, paused = paused_at(dy, "after-create")
    cli.kill()  # the CLI dies while its supervisor is about to answer it
    cli.communicate()
    marker.unlink()  # the supervisor goes on: starts, answers into a closed pipe
    bundle = marker.parent
    until("the container to run", lambda: status_of(bundle)["state"] == "running")
    status = status_of(bundle)
    assert status["supervisor_pid"] == paused["pid"] and not gone(paused["pid"])
    assert inspect(dy, "orphan")["State"]["Running"]
    dy("stop", "-t", "0", "orphan")
    if mode == "--rm":  # the supervisor's exit hook removes it, as it would have
        until("the --rm container to go", lambda: dy("ps", "-a", "-q").stdout == "")
        assert not bundle.exists()
    else:
        assert inspect(dy, "orphan")["State"]["ExitCode"] == 137
        assert not os.path.ismount(bundle / "rootfs")
    assert dy("system", "check").stdout.strip() == "ok: store consistent"


# --- 3. a dead supervisor is noticed; its container re-adopted or its policy applied ---

def kill_supervisor(bundle: Path) -> dict[str, Any]:
    status = status_of(bundle)
    os.kill(status["supervisor_pid"], signal.SIGKILL)
    until("the supervisor to die", lambda: gone(status["supervisor_pid"]))
    return status


def test_a_container_whose_supervisor_died_is_readopted_and_keeps_its_policy(
        dy: Dockyard) -> None:
    dy("run", "-d", "--name", "adoptee", "--restart", "always", "box:1", "sh", "-c",
       "echo one; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo two; sleep 300")
    bundle = bundle_of(dy, "adoptee")
    until("the first line", lambda: dy("logs", "adoptee").stdout == "one\n")
    before = kill_supervisor(bundle)
    assert not gone(before["pid"])  # the container runs on, unsupervised
    check = dy("system", "check", check=False)
    assert check.returncode == 1
    assert "supervisor gone, container running unsupervised" in check.stdout
    assert dy("ps", "--format", "{{.Names}}").stdout.split() == ["adoptee"]  # re-adopts
    adopted = status_of(bundle)
    assert adopted["supervisor_pid"] != before["supervisor_pid"]
    assert not gone(adopted["supervisor_pid"]) and adopted["pid"] == before["pid"]
    assert dy("system", "check").stdout.strip() == "ok: store consistent"
    dy("exec", "adoptee", "touch", "/tmp/go")  # its output reaches the log again
    until("the line written after adoption",
          lambda: dy("logs", "adoptee").stdout == "one\ntwo\n")
    os.kill(before["pid"], signal.SIGKILL)  # the new supervisor applies the policy
    state = until("the policy restart", lambda: (
        (doc := inspect(dy, "adoptee"))["RestartCount"] == 1 and doc["State"]["Running"]
        and doc["State"]["Pid"] not in (0, before["pid"]) and doc["State"]))
    assert state["ExitCode"] == 0


def test_restore_restarts_an_always_container_whose_supervisor_and_init_died(
        dy: Dockyard) -> None:
    dy("run", "-d", "--name", "phoenix2", "--restart", "always", "box:1", "sleep", "300")
    bundle = bundle_of(dy, "phoenix2")
    before = kill_supervisor(bundle)
    os.kill(before["pid"], signal.SIGKILL)
    until("the init to die", lambda: gone(before["pid"]))
    assert dy("system", "restore").stdout.split() == [inspect(dy, "phoenix2")["Id"]]
    state = inspect(dy, "phoenix2")["State"]
    assert state["Running"] and state["Pid"] not in (0, before["pid"])
    assert not gone(status_of(bundle)["supervisor_pid"])
    assert dy("system", "restore").stdout == ""  # idempotent
    assert dy("system", "check").stdout.strip() == "ok: store consistent"


def test_the_next_command_records_the_exit_of_a_container_that_died_unsupervised(
        dy: Dockyard) -> None:
    dy("run", "-d", "--name", "lost", "box:1", "sleep", "300")
    bundle = bundle_of(dy, "lost")
    before = kill_supervisor(bundle)
    os.kill(before["pid"], signal.SIGKILL)
    until("the init to die", lambda: gone(before["pid"]))
    state = inspect(dy, "lost")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 255
    assert not os.path.ismount(bundle / "rootfs")  # the exit hook's work, done for it
    assert dy("system", "check").stdout.strip() == "ok: store consistent"


def test_a_container_that_dies_while_being_adopted_gets_its_exit_recorded(
        dy: Dockyard) -> None:
    """The init ends between the engine's look (alive: adopt it) and the new
    supervisor's: the exit is recorded (255) and the runtime state deleted."""
    dy("run", "-d", "--name", "slipping", "--network", "none", "box:1", "sleep", "300")
    bundle = bundle_of(dy, "slipping")
    before = kill_supervisor(bundle)
    cli = start_cli(dy, "inspect", "slipping", pause_at="before-adopt")
    try:
        marker, _paused = paused_at(dy, "before-adopt")
        os.kill(before["pid"], signal.SIGKILL)
        until("the init to die", lambda: gone(before["pid"]))
        marker.unlink()
        _out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 0, err
    until("the exit to be recorded", lambda: status_of(bundle)["state"] == "exited")
    state = inspect(dy, "slipping")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 255), state
    until("the runtime state to go",
          lambda: not (dy.root / "run" / "runtime" / bundle.name).exists())
    assert dy("system", "check").stdout.strip() == "ok: store consistent"


def _killed_once_the_exit_is_recorded(dy: Dockyard, *args: str, watchdog: bool = False,
                                      hook_too: bool = True) -> Path:
    """A container whose supervisor recorded its exit (3) and was killed right then,
    before deleting the runtime state and running the exit hook (unmount, --rm):
    ``hook_too``, the hook's process it had begun as it saw the exit is killed with
    it (its process group).  With the zygote's ``watchdog`` on, that work may be
    under way, or done, at once."""
    cli = start_cli(dy, "run", "-d", "--name", "halfdone", *args, "box:1", "sh", "-c",
                    "sleep 0.2; exit 3", pause_at="exit-recorded")
    try:
        assert cli.wait(timeout=60) == 0, cli.communicate()[1]
        marker, paused = paused_at(dy, "exit-recorded")
    finally:
        if cli.poll() is None:
            cli.kill()
        cli.communicate()
    if hook_too:
        os.killpg(paused["pid"], signal.SIGKILL)  # (a session leader: its group's id)
    else:
        os.kill(paused["pid"], signal.SIGKILL)
    until("the supervisor to die", lambda: gone(paused["pid"]))
    # (with the watchdog on, an --rm container may be gone already, the marker with it)
    marker.unlink(missing_ok=watchdog)
    bundle = marker.parent
    if not watchdog and hook_too:  # (as it was left: nothing else runs)
        assert status_of(bundle)["exit_pending"] and os.path.ismount(bundle / "rootfs")
        assert (dy.root / "run" / "runtime" / bundle.name).is_dir()
    return bundle


def test_the_next_command_finishes_an_exit_whose_supervisor_died_recording_it(
        dy: Dockyard) -> None:
    bundle = _killed_once_the_exit_is_recorded(dy)
    found = dy("system", "check", check=False).stdout
    assert "supervisor gone before its exit was cleaned up" in found, found
    state = inspect(dy, "halfdone")["State"]  # any command: the exit's work done
    assert state["Status"] == "exited" and state["ExitCode"] == 3  # (kept, not 255)
    assert not os.path.ismount(bundle / "rootfs")
    assert not (dy.root / "run" / "runtime" / bundle.name).exists()
    assert not status_of(bundle)["exit_pending"]
    assert dy("system", "check").stdout.strip() == "ok: store consistent"
    assert "die" in dy("events", "--until", "0s", "--filter", "container=halfdone",
                       "--format", "{{.Action}}").stdout.split()


def test_the_exit_hook_finishes_the_exit_of_a_supervisor_killed_recording_it(
        dy: Dockyard) -> None:
    """The exit hook's process begins as the supervisor sees the exit, and waits for
    the supervisor's part (the exit recorded, the runtime's state deleted): killed
    meanwhile, the supervisor lets it go on (the gate opens with its death), and it
    does the rest without any command or watchdog."""
    bundle = _killed_once_the_exit_is_recorded(dy, hook_too=False)
    until("the exit's work done", lambda: not status_of(bundle)["exit_pending"])
    assert not os.path.ismount(bundle / "rootfs")
    assert not (dy.root / "run" / "runtime" / bundle.name).exists()
    state = status_of(bundle)
    assert (state["state"], state["exit_code"]) == ("exited", 3), state
    assert dy("system", "check").stdout.strip() == "ok: store consistent"


def test_the_zygote_finishes_an_rm_exit_whose_supervisor_died_recording_it(
        box: Dockyard) -> None:
    """With the watchdog: no command needed, the --rm container goes all the same."""
    bundle = _killed_once_the_exit_is_recorded(box, "--rm", watchdog=True)
    until("the --rm container to go", lambda: not bundle.exists())
    assert box("ps", "-a", "-q").stdout == ""
    assert box("system", "check").stdout.strip() == "ok: store consistent"


def test_the_zygote_readopts_a_container_whose_supervisor_was_killed(box: Dockyard) -> None:
    """The zygote's watchdog: no command runs after the kill, yet a new supervisor
    takes the running container over, and its restart policy holds."""
    box("run", "-d", "--name", "watched", "--restart", "always", "--network", "none",
        "box:1", "sleep", "300")
    bundle = bundle_of(box, "watched")
    before = kill_supervisor(bundle)
    adopted = until("a new supervisor running it",
                    lambda: adopted_by_a_new_supervisor(bundle, before))
    assert adopted["pid"] == before["pid"]
    os.kill(before["pid"], signal.SIGKILL)  # the new supervisor applies the policy
    until("the policy restart", lambda: (
        (s := status_of(bundle))["state"] == "running" and s["pid"] not in (0, before["pid"])))
    assert box("system", "check").stdout.strip() == "ok: store consistent"


def test_a_tty_container_keeps_its_terminal_when_its_supervisor_is_killed(
        box: Dockyard) -> None:
    """The zygote keeps a copy of a TTY container's pty master: a killed supervisor
    does not hang the terminal up (SIGHUP would end the shell), and the new
    supervisor takes the master back, so output goes on reaching the log."""
    box("run", "-d", "-t", "--name", "teletype", "--network", "none", "box:1", "sh", "-c",
        "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done")
    bundle = bundle_of(box, "teletype")
    until("some output", lambda: "tick2" in box("logs", "teletype").stdout)
    before = kill_supervisor(bundle)
    adopted = until("a new supervisor running it",
                    lambda: adopted_by_a_new_supervisor(bundle, before))
    assert not gone(before["pid"]) and adopted["pid"] == before["pid"]
    seen = box("logs", "teletype").stdout.count("tick")
    until("output after the adoption",
          lambda: box("logs", "teletype").stdout.count("tick") >= seen + 5)
    assert not gone(before["pid"])


def test_the_zygote_applies_the_policy_when_supervisor_and_container_died(
        box: Dockyard) -> None:
    box("run", "-d", "--name", "phoenix3", "--restart", "always", "--network", "none",
        "box:1", "sleep", "300")
    bundle = bundle_of(box, "phoenix3")
    status = status_of(bundle)
    os.kill(status["pid"], signal.SIGKILL)  # the container first, then its supervisor,
    os.kill(status["supervisor_pid"], signal.SIGKILL)  # before it could see the exit
    def back() -> bool:
        try:  # (a start writes it anew)
            now = status_of(bundle)
        except (OSError, ValueError):
            return False
        return now["state"] == "running" and now["pid"] not in (0, status["pid"]) and \
            not gone(now["supervisor_pid"])

    until("the container to come back", back)
    assert box("system", "check").stdout.strip() == "ok: store consistent"


# --- 4. Docker's restart semantics ---------------------------------------------------

def test_restart_delay_is_dockers_schedule() -> None:
    from dockyard.supervise.monitor import restart_delay

    delays, delay = [], 0.0
    for _ in range(12):
        delay = restart_delay(delay, ran_for=0.5)
        delays.append(delay)
    assert delays[:6] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]  # doubling from 100 ms
    assert delays[-1] == 60.0 and max(delays) == 60.0  # at most a minute
    assert restart_delay(60.0, ran_for=10.0) == 0.1  # reset after 10 s up
    assert restart_delay(0.8, ran_for=9.9) == 1.6


def test_a_container_waiting_to_restart_shows_as_restarting(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "flapping", "--restart", "always", "box:1", "sh", "-c",
       "exit 3")
    bundle = bundle_of(dy, "flapping")
    until("five restarts", lambda: status_of(bundle)["restart_count"] >= 5)
    # the schedule the supervisor actually followed, as it recorded it
    assert status_of(bundle)["restart_delays"][:5] == [0.1, 0.2, 0.4, 0.8, 1.6]
    doc = until("a wait to restart", lambda: (
        (d := inspect(dy, "flapping"))["State"]["Restarting"] and d))
    state = doc["State"]
    assert state["Status"] == "restarting" and state["Running"] and state["Pid"] == 0
    assert state["ExitCode"] == 3 and doc["RestartCount"] >= 5
    shown = until("ps showing it", lambda: [
        line for line in dy("ps", "--format", "{{.Names}}|{{.Status}}").stdout.splitlines()
        if line.startswith("flapping|Restarting (3) ")])
    assert shown[0].endswith(" ago")
    assert dy("ps", "-q", "--filter", "status=restarting").stdout.strip() == doc["Id"][:12]
    dy("stop", "flapping")  # cancels the pending restart at once
    assert inspect(dy, "flapping")["State"]["Status"] == "exited"


def test_after_a_policy_restart_the_exit_code_is_zero_again(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "comeback", "--restart", "always", "box:1", "sleep", "300")
    first = inspect(dy, "comeback")["State"]["Pid"]
    os.kill(first, signal.SIGKILL)
    doc = until("the restart", lambda: (
        (d := inspect(dy, "comeback"))["State"]["Running"] and
        d["State"]["Pid"] not in (0, first) and d))
    assert doc["RestartCount"] == 1
    assert doc["State"]["ExitCode"] == 0  # Docker's; the 137 was the previous run's


def test_kill_returns_once_the_exit_is_recorded(dy: Dockyard) -> None:
    """As dockerd's: ``kill`` (SIGKILL) answers after the exit is recorded, so the
    next command sees the container exited — even when the supervisor is slow to
    record it (here held right after it saw the exit)."""
    cli = start_cli(dy, "run", "-d", "--name", "slowexit", "--network", "none", "box:1",
                    "sleep", "60", pause_at="exit-seen")
    _out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    killer = subprocess.Popen([*dy.argv, "--root", str(dy.root), "kill", "slowexit"],
                              env=dy.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    marker, _paused = paused_at(dy, "exit-seen")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            killer.wait(timeout=0.5)  # the exit is not recorded yet: no answer
    finally:
        marker.unlink()  # the supervisor goes on, whatever the outcome
    try:
        assert killer.wait(timeout=30) == 0, killer.communicate()[1]
    finally:
        if killer.poll() is None:
            killer.kill()
        killer.communicate()
    state = inspect(dy, "slowexit")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 137), state


@pytest.mark.parametrize("removal", ["rm -f", "run --rm"])
def test_a_removal_answers_once_the_container_is_gone(dy: Dockyard, removal: str) -> None:
    """``rm -f`` and ``run --rm`` answer once the exit hook removed the container (its
    folder goes last), not once its supervisor has ended too: that comes 2-4 ms later,
    and here the supervisor is held after its hook for good."""
    held = dy.root / "containers" / "pause-exit-hook-done"
    command = ["run", "--rm", "--network", "none", "box:1", "true"] if removal == "run --rm" \
        else ["run", "-d", "--name", "quick", "--network", "none", "box:1", "sleep", "60"]
    cli = start_cli(dy, *command, pause_at="exit-hook-done")
    try:
        _out, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, err
        if removal == "rm -f":
            removed = subprocess.run([*dy.argv, "--root", str(dy.root), "rm", "-f", "quick"],
                                     env=dy.env, capture_output=True, text=True, timeout=20)
            assert (removed.returncode, removed.stdout) == (0, "quick\n"), removed.stderr
        assert dy("ps", "-a", "-q").stdout == ""
    finally:
        until("the supervisor to be held", held.exists)  # (so it was not waited for)
        held.unlink()
    assert dy("system", "check").stdout.strip() == "ok: store consistent"


def test_a_foreground_run_is_attached_by_its_start(dy: Dockyard) -> None:
    """The CLI's end of the socket pair its supervisor answers on is its attached
    connection (its ``attach exit`` line sent before the supervisor was asked for):
    the container's output reaches it with the attach socket taken away before the
    answer.  Red when the CLI connects to ``attach.sock`` after the answer."""
    cli = start_cli(dy, "run", "--rm", "--network", "none", "box:1", "sh", "-c",
                    "echo from-the-container; exit 7", pause_at="after-create")
    try:
        marker, _paused = paused_at(dy, "after-create")
        (marker.parent / "attach.sock").unlink()  # nobody can connect any more
        marker.unlink()
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert (cli.returncode, out) == (7, "from-the-container\n"), err
    assert dy("ps", "-a", "-q").stdout == ""
