"""create/start/state/kill/delete, pause/resume, exec, hooks, terminals: both runtimes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.supervise.process import send_signal, start_time
from dockyard.testing.bundles import BundleFactory, Runtime, base_config, busybox_path

pytestmark = pytest.mark.root


def status(runtime: Runtime, cid: str) -> str:
    result = runtime.call("state", cid)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["status"])


def until(what: str, check: Callable[[], object], timeout: float = 10) -> None:
    """Poll ``check`` until true; fail naming ``what`` after the deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def wait_status(runtime: Runtime, cid: str, want: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while status(runtime, cid) != want:
        assert time.monotonic() < deadline, f"{cid} never became {want}"
        time.sleep(0.02)


@pytest.fixture
def sleeper(runtime: Runtime, factory: BundleFactory) -> Iterator[tuple[Runtime, str, Path]]:
    """A created (not started) container running ``sleep 300``; deleted afterwards."""
    bundle = factory.make(base_config(["sleep", "300"]))
    cid = f"life-{uuid.uuid4().hex[:8]}"
    result = runtime.call("create", "--bundle", str(bundle), cid, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    yield runtime, cid, bundle
    runtime.call("delete", "--force", cid)


def test_create_start_kill_delete(sleeper: tuple[Runtime, str, Path]) -> None:
    runtime, cid, bundle = sleeper
    state = json.loads(runtime.call("state", cid).stdout)
    assert state["status"] == "created"
    assert state["bundle"] == str(bundle)
    assert state["id"] == cid
    pid = state["pid"]
    assert os.path.exists(f"/proc/{pid}")
    # the init exists in its namespaces but has not exec'd the user process yet
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] != b"sleep"
    assert runtime.call("start", cid).returncode == 0
    wait_status(runtime, cid, "running")
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    assert runtime.call("start", cid).returncode != 0
    assert runtime.call("delete", cid).returncode != 0  # running: refused
    assert runtime.call("kill", cid, "KILL").returncode == 0
    wait_status(runtime, cid, "stopped")
    assert runtime.call("delete", cid).returncode == 0
    assert runtime.call("state", cid).returncode != 0


def test_list_and_ps(sleeper: tuple[Runtime, str, Path]) -> None:
    runtime, cid, _ = sleeper
    listed = json.loads(runtime.call("list", "--format", "json").stdout)
    assert [c["id"] for c in listed] == [cid]
    assert runtime.call("start", cid).returncode == 0
    pids = json.loads(runtime.call("ps", "--format", "json", cid).stdout)
    assert pids == [json.loads(runtime.call("state", cid).stdout)["pid"]]


def freezer_state(config: dict[str, Any]) -> str:
    """The container's cgroup freezer as the kernel reports it: FROZEN or THAWED (v1),
    or "1"/"0" from cgroup.freeze (v2)."""
    path = str(config["linux"]["cgroupsPath"]).lstrip("/")
    v1 = Path("/sys/fs/cgroup/freezer") / path / "freezer.state"
    if v1.exists():
        return v1.read_text().strip()
    return (Path("/sys/fs/cgroup") / path / "cgroup.freeze").read_text().strip()


def test_pause_and_resume(runtime: Runtime, factory: BundleFactory) -> None:
    """Paused means frozen: the kernel's freezer says so and a counting loop stops
    counting (a sleeping, unfrozen process would pass a look at its state letter)."""
    config = base_config(["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; "
                          "sleep 0.01; done"])
    bundle = factory.make(config)
    counter = bundle / "rootfs" / "tmp" / "n"
    cid = f"pause-{uuid.uuid4().hex[:8]}"
    assert runtime.call("run", "-d", "--bundle", str(bundle), cid,
                        stdin=subprocess.DEVNULL).returncode == 0
    try:
        until("the counter to count", lambda: counter.exists() and
              counter.read_text().strip() not in ("", "1"))
        assert runtime.call("pause", cid).returncode == 0
        assert status(runtime, cid) == "paused"
        assert freezer_state(config) in ("FROZEN", "1")
        frozen_at = counter.read_text()
        # ~50 of its periods: an unfrozen loop counts on meanwhile (a frozen one never
        # does, however slow the machine: this wait cannot make the test fail wrongly)
        time.sleep(0.5)
        assert counter.read_text() == frozen_at
        assert status(runtime, cid) == "paused"
        assert runtime.call("resume", cid).returncode == 0
        assert status(runtime, cid) == "running"
        assert freezer_state(config) in ("THAWED", "0")
        until("the counter to count again", lambda: counter.read_text() != frozen_at)
    finally:
        runtime.call("delete", "--force", cid)


def test_exec_joins_namespaces_and_cgroup(sleeper: tuple[Runtime, str, Path]) -> None:
    runtime, cid, _ = sleeper
    runtime.call("start", cid)
    pid = json.loads(runtime.call("state", cid).stdout)["pid"]
    result = runtime.call("exec", cid, "sh", "-c",
                          "for n in pid net ipc uts mnt; do readlink /proc/self/ns/$n; done; "
                          "grep -qx $$ /sys/fs/cgroup/pids/cgroup.procs && echo in-cgroup; exit 3",
                          stdin=subprocess.DEVNULL)
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    expected = [os.readlink(f"/proc/{pid}/ns/{n}") for n in ("pid", "net", "ipc", "uts", "mnt")]
    assert lines[:5] == expected
    assert lines[5] == "in-cgroup"


def test_exec_with_process_file_and_detach(sleeper: tuple[Runtime, str, Path],
                                           tmp_path: Path) -> None:
    runtime, cid, _ = sleeper
    runtime.call("start", cid)
    process = {"args": ["sleep", "30"], "cwd": "/", "env": ["PATH=/bin"],
               "user": {"uid": 0, "gid": 0}}
    (tmp_path / "p.json").write_text(json.dumps(process))
    pid_file = tmp_path / "exec.pid"
    result = runtime.call("exec", "--process", str(tmp_path / "p.json"), "--detach",
                          "--pid-file", str(pid_file), cid, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"30"]
    pids = json.loads(runtime.call("ps", "--format", "json", cid).stdout)
    assert pid in pids


def test_kill_all_reaches_every_process(runtime: Runtime, factory: BundleFactory,
                                        tmp_path: Path) -> None:
    """In a pid namespace of its own every process dies with the init, so a plain kill
    would pass too: here the container shares the host's, and an exec'd process
    outlives its init unless ``kill --all`` (every process in its cgroup) reaches it."""
    config = base_config(["sleep", "300"])
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                     if ns["type"] != "pid"]
    cid = f"killall-{uuid.uuid4().hex[:8]}"
    result = runtime.call("run", "-d", "--bundle", str(factory.make(config)), cid,
                          stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    pid_file = tmp_path / "exec.pid"
    survivor, survivor_start = 0, None
    try:
        result = runtime.call("exec", "--detach", "--pid-file", str(pid_file), cid,
                              "sleep", "301", stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        survivor = int(pid_file.read_text())
        survivor_start = start_time(survivor)
        init = json.loads(runtime.call("state", cid).stdout)["pid"]
        pids = json.loads(runtime.call("ps", "--format", "json", cid).stdout)
        assert sorted(pids) == sorted([init, survivor])  # host pids: no pid namespace
        assert runtime.call("kill", "--all", cid, "9").returncode == 0
        wait_status(runtime, cid, "stopped")
        until("the exec'd process to die", lambda: start_time(survivor) is None)
    finally:
        if survivor and survivor_start is not None:
            send_signal(survivor, survivor_start, signal.SIGKILL)  # only if it is ours
        runtime.call("delete", "--force", cid)


def test_hooks_run_with_state(runtime: Runtime, factory: BundleFactory, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    hook_script = tmp_path / "hook.sh"
    hook_script.write_text(f"#!/bin/sh\necho \"$1 $(cat)\" >> {log}\n")
    hook_script.chmod(0o755)
    config = base_config(["true"])
    config["hooks"] = {kind: [{"path": str(hook_script), "args": ["hook.sh", kind]}]
                       for kind in ("prestart", "createRuntime", "poststart", "poststop")}
    bundle = factory.make(config)
    result = runtime.run_bundle(bundle, "hooked")
    assert result.returncode == 0, result.stderr
    entries = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert [kind for kind, _ in entries] == ["prestart", "createRuntime", "poststart",
                                             "poststop"]
    for _kind, state in entries:
        assert json.loads(state)["id"] == "hooked"


def test_failing_create_hook_fails_create_and_cleans_up(
        runtime: Runtime, factory: BundleFactory) -> None:
    config = base_config(["true"])
    config["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    result = runtime.call("create", "--bundle", str(factory.make(config)), "hookfail")
    assert result.returncode != 0
    assert runtime.call("state", "hookfail").returncode != 0


def test_terminal_through_console_socket(runtime: Runtime, factory: BundleFactory,
                                         tmp_path: Path) -> None:
    from dockyard.runtime.linux.console import receive_fd

    config = base_config(["sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; tty"])
    config["process"]["terminal"] = True
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock_path = tmp_path / "console.sock"
    listener.bind(str(sock_path))
    listener.listen(1)
    cid = f"tty-{uuid.uuid4().hex[:6]}"
    try:
        result = runtime.call("create", "--bundle", str(factory.make(config)),
                              "--console-socket", str(sock_path), cid)
        assert result.returncode == 0, result.stderr
        conn, _ = listener.accept()
        master = receive_fd(conn)
        conn.close()
        assert runtime.call("start", cid).returncode == 0
        output = b""
        while True:
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        os.close(master)
        assert b"is-a-tty" in output
        assert b"/dev/console" in output or b"/dev/pts/" in output
    finally:
        listener.close()
        runtime.call("delete", "--force", cid)


def test_preserve_fds(runtime: Runtime, factory: BundleFactory, tmp_path: Path) -> None:
    config = base_config(["sh", "-c", "cat <&3"])
    data = tmp_path / "data"
    data.write_text("through fd 3\n")
    with open(data) as handle:
        cmd = runtime.cmd("run", "--preserve-fds", "1", "--bundle",
                          str(factory.make(config)), "fds")
        fd = handle.fileno()
        proc = subprocess.run(["bash", "-c", f'exec 3<&{fd}; exec "$@"', "bash", *cmd],
                              pass_fds=(fd,), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False, timeout=30)
    assert proc.stdout == "through fd 3\n", proc.stderr


def test_join_network_namespace_by_path(runtime: Runtime, factory: BundleFactory) -> None:
    name = f"dytest{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "probe0", "type", "veth", "peer",
                        "name", "probe1"], check=True)
        config = base_config(["ls", "/sys/class/net"])
        config["linux"]["namespaces"] = [
            ns if ns["type"] != "network" else {"type": "network",
                                                "path": f"/run/netns/{name}"}
            for ns in config["linux"]["namespaces"]]
        result = runtime.run_bundle(factory.make(config))
        assert sorted(result.stdout.split()) == ["lo", "probe0", "probe1"], result.stderr
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def test_container_hooks_run_inside(runtime: Runtime, factory: BundleFactory,
                                    tmp_path: Path) -> None:
    """createContainer runs before pivot_root (host paths), startContainer inside the rootfs."""
    log = tmp_path / "hooks.log"
    config = base_config(["cat", "/started"])
    config["hooks"] = {
        "createContainer": [{"path": "/bin/sh",
                             "args": ["sh", "-c", f"readlink /proc/self/ns/mnt >> {log}"]}],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo started > /started"]}],
    }
    result = runtime.run_bundle(factory.make(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "started\n"
    assert log.read_text().strip() != os.readlink("/proc/self/ns/mnt")


SIGNAL_LINES = "grep -E '^Sig(Blk|Ign|Cgt):' /proc/self/status"
CLEAN_SIGNALS = ["SigBlk:", "0" * 16, "SigIgn:", "0" * 16, "SigCgt:", "0" * 16]


def test_exec_starts_with_clean_signal_state(sleeper: tuple[Runtime, str, Path]) -> None:
    runtime, cid, _ = sleeper
    runtime.call("start", cid)
    result = runtime.call("exec", cid, "sh", "-c", f"{SIGNAL_LINES}; yes | head -n1",
                          stdin=subprocess.DEVNULL)
    assert result.stdout.split() == [*CLEAN_SIGNALS, "y"], result.stderr
    assert result.stderr == ""


def _ignore_hangup() -> None:
    """What a supervisor (or nohup) does before it starts the runtime."""
    import signal

    signal.signal(signal.SIGHUP, signal.SIG_IGN)


@pytest.mark.parametrize("caller", ["plain", "ignoring-SIGHUP"])
def test_hooks_start_with_clean_signal_state(runtime: Runtime, factory: BundleFactory,
                                             tmp_path: Path, caller: str) -> None:
    """Every hook kind; startContainer runs inside, so it writes into the rootfs.

    Busybox probes on the host too (GNU grep catches SIGSEGV for itself).
    """
    busybox = busybox_path()
    assert busybox is not None
    config = base_config(["true"])
    host_kinds = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
    config["hooks"] = {kind: [{"path": busybox, "args": [
        "sh", "-c", f"{SIGNAL_LINES} > {tmp_path}/{kind}; true"]}] for kind in host_kinds}
    config["hooks"]["startContainer"] = [{"path": "/bin/sh", "args": [
        "sh", "-c", f"{SIGNAL_LINES} > /startContainer; true"]}]
    bundle = factory.make(config)
    result = runtime.call("run", "--bundle", str(bundle), f"hooks-{uuid.uuid4().hex[:6]}",
                          stdin=subprocess.DEVNULL,
                          preexec_fn=_ignore_hangup if caller != "plain" else None)
    assert result.returncode == 0, result.stderr
    for kind in host_kinds:
        assert (tmp_path / kind).read_text().split() == CLEAN_SIGNALS, kind
    assert (bundle / "rootfs" / "startContainer").read_text().split() == CLEAN_SIGNALS


def test_exec_without_a_mount_namespace_sees_the_rootfs(dockyard: Runtime,
                                                         factory: BundleFactory) -> None:
    """dockyard-runtime only, on purpose: runc 1.1's exec into a container that shares
    its mount namespace leaves the new process at the host's root directory."""
    config = base_config(["sleep", "300"])
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                     if ns["type"] != "mount"]
    config["linux"]["maskedPaths"] = config["linux"]["readonlyPaths"] = []
    bundle = factory.make(config)
    result = dockyard.call("run", "-d", "--bundle", str(bundle), "shared-mnt",
                           stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    try:
        result = dockyard.call("exec", "shared-mnt", "sh", "-c", "ls / | tr '\\n' ' '; pwd",
                               stdin=subprocess.DEVNULL)
        assert result.stdout.split() == ["bin", "dev", "etc", "proc", "root", "sys", "tmp",
                                         "/"], result.stderr
    finally:
        dockyard.call("delete", "--force", "shared-mnt")


def test_join_mount_namespace_by_path(runtime: Runtime, factory: BundleFactory) -> None:
    """A mount namespace joined by path is the container's: the rootfs is set up and
    pivoted into there, as in a new one (runc's behaviour); the host's is untouched."""
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                               "sleep", "300"])
    try:
        ns_path = f"/proc/{holder.pid}/ns/mnt"
        deadline = time.monotonic() + 5
        while os.readlink(ns_path) == os.readlink("/proc/self/ns/mnt"):
            assert time.monotonic() < deadline, "unshare never made its namespace"
            time.sleep(0.01)
        config = base_config(["sh", "-c", "readlink /proc/self/ns/mnt; ls / | tr '\\n' ' '"])
        config["linux"]["namespaces"] = [
            ns if ns["type"] != "mount" else {"type": "mount", "path": ns_path}
            for ns in config["linux"]["namespaces"]]
        result = runtime.run_bundle(factory.make(config))
        assert result.returncode == 0, result.stderr
        ns, listing = result.stdout.splitlines()
        assert ns == os.readlink(ns_path)
        assert listing.split() == ["bin", "dev", "etc", "proc", "root", "sys", "tmp"]
        # pivot_root (not a chroot) moved the root of every process in the namespace
        # whose root was the old one: the holder now sees the container's rootfs
        assert sorted(os.listdir(f"/proc/{holder.pid}/root")) == listing.split()
    finally:
        holder.kill()
        holder.wait()
