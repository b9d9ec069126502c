"""The warm path (``cli.warm``): with the root's zygote running, a hot command is run
by a fork of it, with the caller's streams, working directory, environment and
umask; the caller forwards signals, and a killed caller takes its worker along."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from dockyard.testing.cli import Dockyard
from dockyard.testing.poll import until

pytestmark = pytest.mark.root


def _zygote_of(dy: Dockyard) -> int:
    """The pid of the zygote serving ``dy``'s root (started by a detached run)."""
    run_dir = str(dy.layout.run_dir).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if b"dockyard.supervise.zygote" in argv and run_dir in argv:
            return int(entry)
    raise AssertionError("no zygote runs for this root")


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _pids_by_phase(stderr: str) -> dict[str, str]:
    """A ``DOCKYARD_TRACE`` timeline's phases and the pid that marked each."""
    phases = {}
    for line in stderr.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[3] == "cli":
            phases[parts[5]] = parts[4]
    return phases


@pytest.fixture
def warm(box: Dockyard) -> Dockyard:
    box("run", "-d", "--name", "keep", "--network", "none", "box:1", "sleep", "300")
    return box


def _run_in(dy: Dockyard, cwd: Path, *args: str, env: dict[str, str] | None = None,
            input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*dy.argv, "--root", str(dy.root), *args], cwd=cwd,
                          env={**dy.env, **(env or {})}, input=input, capture_output=True,
                          timeout=120, check=False)


@pytest.mark.parametrize("warm_cli", ["1", "0"])
def test_a_run_handed_to_the_zygote_is_the_callers_own(warm: Dockyard, tmp_path: Path,
                                                      warm_cli: str) -> None:
    (tmp_path / "vars.env").write_text("FROMFILE=filed\n")
    done = _run_in(warm, tmp_path, "run", "--rm", "-i", "--network", "none", "-e", "FROMENV",
                   "--env-file", "vars.env", "box:1", "sh", "-c",
                   'read x; echo "out:$x:$FROMENV:$FROMFILE"; echo oops >&2; exit 7',
                   env={"FROMENV": "inherited", "DOCKYARD_TRACE": "1",
                        "DOCKYARD_WARM_CLI": warm_cli}, input=b"hello\n")
    assert done.returncode == 7, done.stderr
    assert done.stdout == b"out:hello:inherited:filed\n"
    assert b"oops" in done.stderr
    phases = _pids_by_phase(done.stderr.decode())
    client, worker = phases["interpreter up"], phases["image resolved"]
    assert (client != worker) == (warm_cli == "1"), phases  # off: all in the caller


def test_errors_read_as_the_callers_own(warm: Dockyard, tmp_path: Path) -> None:
    missing = _run_in(warm, tmp_path, "inspect", "no-such-thing")
    assert missing.returncode == 1 and missing.stderr == b"Error: No such image: no-such-thing\n"
    wrong = _run_in(warm, tmp_path, "create", "--no-such-flag", "box:1")  # (click's words)
    assert wrong.returncode == 2 and b"Usage: dockyard create [OPTIONS]" in wrong.stderr, \
        wrong.stderr


def _client_and_worker(dy: Dockyard, cwd: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A ``wait`` (it blocks) handed to the zygote from ``cwd``: its caller and its
    worker (the child of the command parent that took the caller's working directory:
    a spare forked ahead, or a fork made for it)."""
    parent = _command_parent_of(dy)
    client = subprocess.Popen([*dy.argv, "--root", str(dy.root), "wait", "keep"],
                              env=dy.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True, cwd=cwd)
    worker = until("the worker to take the request", lambda: next(
        (pid for pid in _children(parent) if _cwd(pid) == str(cwd)), None))
    until("the caller to catch SIGTERM (to pass it on)", lambda: _catches(client.pid,
                                                                          signal.SIGTERM))
    return client, worker


def _command_parent_of(dy: Dockyard) -> int:
    """The zygote's child that forks the workers (``supervise.command_parent``): the
    one child of the zygote that is not a container's supervisor (its session is the
    zygote's; a supervisor leads its own).  Waited for: a command the zygote was
    started for may be answered before the command parent is up, and a supervisor
    (the spare's too) is in the zygote's session from its fork to its ``setsid``."""
    zygote = _zygote_of(dy)

    def alone() -> int | None:
        parents = [pid for pid in _children(zygote)
                   if not _gone(pid) and os.getsid(pid) == os.getsid(zygote)]
        return parents[0] if len(parents) == 1 else None

    return int(until("the command parent alone in the zygote's session", alone))


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def _workers_of(parent: int) -> list[int]:
    """The command parent's live workers and spare: each leads a session of its own
    (the holder of the database, its other child, stays in the parent's)."""
    return [pid for pid in _children(parent) if not _gone(pid) and os.getsid(pid) == pid]


def _holder_of(parent: int) -> int:
    """The command parent's child that holds the root's database open: the one that
    stays in the parent's session (a worker or spare just forked is there too, until
    its ``setsid``)."""
    def alone() -> int | None:
        found = [pid for pid in _children(parent)
                 if not _gone(pid) and os.getsid(pid) == os.getsid(parent)]
        return found[0] if len(found) == 1 else None

    return int(until("the holder alone in the command parent's session", alone))


def _spare_of(dy: Dockyard) -> int:
    """The command parent's spare worker: its one worker while no command runs (one
    that has taken a caller's working directory is a worker finishing a command: the
    last one's may still be ending when its caller is answered)."""
    parent = _command_parent_of(dy)

    def alone() -> int | None:
        live = [pid for pid in _workers_of(parent) if _cwd(pid) == _cwd(parent)]
        return live[0] if len(live) == 1 else None

    return int(until("one spare, and no worker", alone))


def _catches(pid: int, number: int) -> bool:
    with open(f"/proc/{pid}/status") as handle:
        caught = next(line for line in handle if line.startswith("SigCgt:")).split()[1]
    return bool(int(caught, 16) & (1 << (number - 1)))


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_a_killed_caller_takes_its_worker_along(warm: Dockyard, tmp_path: Path) -> None:
    client, worker = _client_and_worker(warm, tmp_path)
    client.kill()
    client.communicate()
    until("the worker to go with its caller", lambda: _gone(worker))
    assert warm("inspect", "-f", "{{.State.Status}}", "keep").stdout.strip() == "running"


def test_signals_sent_to_the_caller_reach_the_worker(warm: Dockyard,
                                                     tmp_path: Path) -> None:
    client, worker = _client_and_worker(warm, tmp_path)
    client.send_signal(signal.SIGTERM)
    _out, err = client.communicate(timeout=30)
    assert client.returncode == 128 + signal.SIGTERM, err  # as the command's own death
    until("the worker to end", lambda: _gone(worker))


def _as_nobody_hand_over(run_dir: Path, name: str) -> bytes | str:
    """In a child running as nobody: connect to the zygote and hand it a command;
    what came back (b"" if it hung up), or the error's name.  (Through a descriptor
    of the run dir opened before: the test's own directories above it are root's.)"""
    import json
    import socket

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        answer: bytes | str
        dir_fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
        socket_path = f"/proc/self/fd/{dir_fd}/{name}"
        try:
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(socket_path)
                import array

                from dockyard.cli.warm import encode_request

                cwd = os.open("/", os.O_PATH)
                sock.sendmsg([encode_request(["ps"], {}, 0o022)], [(
                    socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2, cwd]))])
                answer = sock.recv(64)
        except OSError as exc:
            answer = type(exc).__name__
        os.write(write_end, json.dumps(answer if isinstance(answer, str)
                                       else answer.decode()).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as handle:
        result = json.loads(handle.read() or '"nothing"')
    os.waitpid(pid, 0)
    hung_up = ("BrokenPipeError", "ConnectionResetError", "")  # refused once connected
    return "hung up" if result in hung_up else result if result == "PermissionError" \
        else result.encode()


@pytest.mark.parametrize("which", ["zygote", "command parent"])
def test_no_other_user_gets_a_command_run_by_the_zygote(warm: Dockyard, which: str) -> None:
    from dockyard.supervise.zygote_address import COMMANDS_SOCKET_NAME, SOCKET_NAME

    warm("ps")  # (the command parent listens)
    name = SOCKET_NAME if which == "zygote" else COMMANDS_SOCKET_NAME
    sock_path = str(warm.layout.run_dir / name)
    assert os.stat(sock_path).st_mode & 0o777 == 0o600
    os.chmod(warm.layout.run_dir, 0o755)  # (a run dir others may enter)
    assert _as_nobody_hand_over(warm.layout.run_dir, name) == "PermissionError"
    os.chmod(sock_path, 0o666)  # and were the socket's mode wrong: its peer is checked
    assert _as_nobody_hand_over(warm.layout.run_dir, name) == "hung up"
    done = _run_in(warm, warm.root, "inspect", "-f", "{{.Name}}", "keep")
    assert (done.returncode, done.stdout) == (0, b"/keep\n"), done.stderr


def test_a_command_goes_to_the_command_parent_directly(warm: Dockyard,
                                                       tmp_path: Path) -> None:
    """Once the command parent runs, a command is handed to it (to its spare) without
    the zygote: it runs while the zygote is stopped.  When the command parent has
    gone, its socket goes with it and the zygote takes the command again."""
    from dockyard.supervise.zygote_address import COMMANDS_SOCKET_NAME

    warm("ps")
    zygote = _zygote_of(warm)
    os.kill(zygote, signal.SIGSTOP)
    try:
        done = _run_in(warm, tmp_path, "inspect", "-f", "{{.Name}}", "keep")
    finally:
        os.kill(zygote, signal.SIGCONT)
    assert (done.returncode, done.stdout) == (0, b"/keep\n"), done.stderr
    parent = _command_parent_of(warm)
    os.kill(parent, signal.SIGKILL)  # (its socket's name is left: nobody listens there)
    until("the command parent to go", lambda: _gone(parent))
    assert (warm.layout.run_dir / COMMANDS_SOCKET_NAME).exists()
    done = _run_in(warm, tmp_path, "inspect", "-f", "{{.Name}}", "keep")
    assert (done.returncode, done.stdout) == (0, b"/keep\n"), done.stderr
    until("a new command parent", lambda: _command_parent_of(warm) != parent)


def test_a_spare_ends_with_its_command_parent_while_a_command_runs(warm: Dockyard,
                                                                    tmp_path: Path) -> None:
    """A command the zygote passed on (the command parent was just started for it)
    runs on; the spare forked beside it still ends with the command parent, so it
    never serves a client behind the zygote's back."""
    warm("ps")
    os.kill(_command_parent_of(warm), signal.SIGKILL)  # (its socket's name is left)
    until("no command parent", lambda: _children_of_zygote_but_supervisors(warm) == [])
    client = subprocess.Popen([*warm.argv, "--root", str(warm.root), "wait", "keep"],
                              env=warm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True, cwd=tmp_path)  # through the zygote
    parent = int(until("a new command parent", lambda: next(
        iter(_children_of_zygote_but_supervisors(warm)), None)))
    worker = int(until("its worker", lambda: next(
        (pid for pid in _children(parent) if _cwd(pid) == str(tmp_path)), None)))
    spare = int(until("a spare beside the command", lambda: next(
        (pid for pid in _workers_of(parent) if pid != worker), None)))
    os.kill(parent, signal.SIGKILL)
    until("the spare to end with it", lambda: _gone(spare))
    assert not _gone(worker)  # (the command runs on)
    client.kill()
    client.communicate()
    until("the worker to go with its caller", lambda: _gone(worker))


def _children_of_zygote_but_supervisors(dy: Dockyard) -> list[int]:
    zygote = _zygote_of(dy)
    return [pid for pid in _children(zygote)
            if not _gone(pid) and os.getsid(pid) == os.getsid(zygote)]


def test_a_request_longer_than_one_read_is_handed_over_whole(warm: Dockyard,
                                                             tmp_path: Path) -> None:
    """An environment and arguments of ~450 KB: more than one read of the socket
    returns (256 KB), so the request is read on until it is as long as it says (it
    was cut, and the command failed with "ended without an exit code")."""
    big = {"A": "a" * 120_000, "B": "b" * 120_000, "X": "x" * 100_000,
           "DOCKYARD_TRACE": "1"}
    done = _run_in(warm, tmp_path, "run", "--rm", "--network", "none", "-e", "X", "box:1",
                   "sh", "-c", 'echo ${#X} "$1"', "-", "y" * 100_000, env=big)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == b"100000 " + b"y" * 100_000 + b"\n"
    assert b"warm: worker took the command over" in done.stderr  # (handed over)


def test_an_exec_handed_over_keeps_its_stdin_and_exit_code(warm: Dockyard,
                                                            tmp_path: Path) -> None:
    done = _run_in(warm, tmp_path, "exec", "-i", "keep", "sh", "-c",
                   'read x; echo "got $x"; exit 5', input=b"hello\n")
    assert (done.returncode, done.stdout) == (5, b"got hello\n"), done.stderr


def test_a_killed_command_parent_is_replaced(warm: Dockyard, tmp_path: Path) -> None:
    """The zygote's child that forks the workers (not the zygote itself, whose heap
    every supervisor starts from) dies: the next command still runs, and the one
    after it is handed to a new command parent."""
    warm("ps")  # (a command handed over: the parent runs)
    parent = _command_parent_of(warm)
    holder = _holder_of(parent)
    os.kill(parent, signal.SIGKILL)
    until("the command parent to go", lambda: _gone(parent))
    until("its holder of the database to go with it", lambda: _gone(holder))
    assert warm("inspect", "-f", "{{.State.Status}}", "keep").stdout.strip() == "running"
    until("a new command parent", lambda: _command_parent_of(warm) != parent)
    client, worker = _client_and_worker(warm, tmp_path)  # handed over to the new one
    client.kill()
    client.communicate()
    until("the worker to go with its caller", lambda: _gone(worker))


def test_the_next_command_is_run_by_the_spare(warm: Dockyard, tmp_path: Path) -> None:
    """While idle, the command parent keeps one worker forked and warmed up ahead; the
    next command is run by it, and a new spare is forked beside it."""
    warm("ps")
    spare = _spare_of(warm)
    client, worker = _client_and_worker(warm, tmp_path)
    assert worker == spare
    until("a new spare beside the worker", lambda: len(
        _workers_of(_command_parent_of(warm))) == 2)
    client.kill()
    client.communicate()
    until("the worker to go with its caller", lambda: _gone(worker))


def test_commands_in_a_row_each_run_once(warm: Dockyard, tmp_path: Path) -> None:
    """Each command handed over is run by one worker and answered once (a spare that
    had read its whole request and closed its end once made the command parent see a
    broken pipe, and fork a second worker for the same command)."""
    for number in range(40):
        done = _run_in(warm, tmp_path, "inspect", "-f", "{{.Name}}", "keep")
        assert (done.returncode, done.stdout, done.stderr) == (0, b"/keep\n", b""), number


def test_a_killed_spare_is_not_needed(warm: Dockyard, tmp_path: Path) -> None:
    """A spare killed before its command came: the next command is run by a fork made
    for it, as without spares."""
    warm("ps")
    spare = _spare_of(warm)
    os.kill(spare, signal.SIGKILL)
    until("the spare to be reaped", lambda: not os.path.exists(f"/proc/{spare}"))
    done = _run_in(warm, tmp_path, "inspect", "-f", "{{.State.Status}}", "keep")
    assert (done.returncode, done.stdout) == (0, b"running\n"), done.stderr
    client, worker = _client_and_worker(warm, tmp_path)
    assert worker != spare
    client.kill()
    client.communicate()


def _open_files(pid: int) -> set[str]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return found


def test_the_root_database_is_held_open_while_commands_are_served(warm: Dockyard) -> None:
    """The command parent's holder keeps the root's database open (so no command's
    open rebuilds the WAL index), in a process of its own: the parent, whose forks
    each open the database themselves, has none to pass on."""
    warm("ps")
    parent = _command_parent_of(warm)
    database = str(warm.root / "metadata.db")
    holder = _holder_of(parent)
    until("the holder to open the database", lambda: database in _open_files(holder))
    assert database not in _open_files(parent)


def test_a_warm_up_reads_and_makes_nothing(warm: Dockyard, tmp_path: Path) -> None:
    """A spare's warm-up lists and inspects (the spare is then warm for any root's
    command) but writes nothing: the database files keep their bytes, and a root that
    is gone (``system reset`` while a zygote lingers) is not made again."""
    from dockyard.cli.warm_worker import warm_up

    files = [warm.root / name for name in ("metadata.db", "metadata.db-wal")]
    before = [path.read_bytes() for path in files if path.exists()]
    for made in ("snapshots/tmp", "content/ingest"):  # (gone, as in a root being
        (warm.root / made).rmdir()  # removed: empty folders the stores make)
    run_dir = warm.layout.run_dir  # (sockets come and go there: the command parent's)
    paths = sorted(p for p in warm.root.rglob("*") if run_dir not in p.parents)
    asked: list[bool] = []

    def ask(answer: bool) -> bool:
        asked.append(answer)
        return answer

    warm_up(warm.layout.run_dir, lambda: ask(False))
    assert len(asked) == 5  # asked before each step: none was cut short
    assert [path.read_bytes() for path in files if path.exists()] == before
    assert sorted(p for p in warm.root.rglob("*")  # (nothing made: no folder, no -shm)
                  if run_dir not in p.parents) == paths
    gone = tmp_path / "gone"
    warm_up(gone / "run", lambda: False)
    assert not gone.exists()
    asked.clear()
    warm_up(warm.layout.run_dir, lambda: ask(True))  # a request came
    assert asked == [True]


def _venv_started_without_site(tmp_path: Path) -> Path:
    """A virtualenv as scripts/install.sh makes it (``bin/dockyard`` run by
    ``python -S``, the package in its site-packages), beside the test one: its
    interpreter, the package linked in, and the test virtualenv's site-packages on a
    .pth (what only ``site`` adds: click and the rest, for a command run in place)."""
    import sys
    import sysconfig

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python3").symlink_to(os.path.realpath(sys.executable))
    base = Path(sys.executable).parent.parent
    (venv / "pyvenv.cfg").write_text((base / "pyvenv.cfg").read_text())
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    packages = venv / "lib" / version / "site-packages"
    packages.mkdir(parents=True)
    import dockyard

    (packages / "dockyard").symlink_to(Path(dockyard.__file__).parent)
    (packages / "test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = (Path(dockyard.__file__).parent.parent / "bin" / "dockyard").read_text()
    command = venv / "bin" / "dockyard"
    command.write_text(f"#!{venv / 'bin' / 'python3'} -S\n" + script.partition("\n")[2])
    command.chmod(0o755)
    return command


def test_a_command_started_without_site_is_handed_over_or_runs_with_site(
        warm: Dockyard, tmp_path: Path) -> None:
    """scripts/install.sh's ``python -S``: a warm command is handed over with no
    ``site`` loaded (its ~3 ms are the point), and one run in place (``volume ls``,
    click's) loads it first."""
    command = _venv_started_without_site(tmp_path)
    env = {**warm.env, "DOCKYARD_TRACE": "1"}
    env.pop("PYTHONPATH", None)
    run = [str(command), "--root", str(warm.root), "run", "--rm", "--network", "none",
           "box:1", "echo", "ran"]
    handed = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60,
                            check=True)
    assert handed.stdout == "ran\n"
    phases = _pids_by_phase(handed.stderr)
    assert phases["interpreter up"] != phases["image resolved"], phases  # a worker's
    timed = subprocess.run(run, env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
                           capture_output=True, text=True, timeout=60, check=True)
    assert timed.stdout == "ran\n"
    imported = [line.rsplit("|", 1)[1].strip() for line in timed.stderr.splitlines()
                if line.startswith("import time:")]
    assert "dockyard.cli.warm" in imported and "site" not in imported
    in_place = subprocess.run([str(command), "--root", str(warm.root), "volume", "ls"],
                              env=env, capture_output=True, text=True, timeout=60)
    assert in_place.returncode == 0, in_place.stderr
