"""``exec``: a new process inside a running container's namespaces and cgroup.

The parent enters the container's pid namespace for its one fork (as ``create``
does); the child joins the cgroup and every other namespace (user first, becoming
its root, as runc; mount last: setns into it also moves root and cwd to the
container's root), then runs the shared ``process`` steps and execs.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from dockyard.errors import DockyardError
from dockyard.oci.runtime_spec import Process, parse_spec
from dockyard.runtime import messages, process
from dockyard.runtime.linux import console, namespaces, signals, userns
from dockyard.runtime.linux import syscalls as sc
from dockyard.runtime.linux.seccomp import SECCOMP_CACHE, compile_filter
from dockyard.runtime.state import (
    ContainerDir,
    ContainerRecord,
    can_exec,
    status_of,
)
from dockyard.stdlite import suppress


class ExecOptions(NamedTuple):
    console_socket: str | None = None
    preserve_fds: int = 0
    stdio: tuple[int, int, int] | None = None  # the process's fds 0-2, if not ours


def base_process(record: ContainerRecord) -> Process:
    spec = parse_spec(record.config)
    assert spec.process is not None
    return spec.process


def exec_in(cdir: ContainerDir, proc: Process, options: ExecOptions) -> int:
    """Start ``proc`` in the container; returns its host pid once it is ready to exec."""
    record = cdir.load()
    can_exec(status_of(cdir, record))
    spec = parse_spec(record.config)
    seccomp = compile_filter(spec.linux.seccomp, SECCOMP_CACHE) \
        if spec.linux.seccomp else None
    ns_types = [ns.type for ns in spec.linux.namespaces if ns.type != "pid"]
    has_pid_ns = spec.linux.namespace("pid") is not None
    cgroup_dirs = record.cgroup_manager().mount_paths() if record.cgroup else {}
    parent_end, child_end = messages.channel_pair()
    pid = namespaces.fork_in_pid_namespace(
        join_path=f"/proc/{record.pid}/ns/pid" if has_pid_ns else "")
    if pid == 0:
        parent_end.close()
        _child(record, ns_types, cgroup_dirs, proc, seccomp, options, child_end)
    child_end.close()
    try:
        message = parent_end.receive()
    finally:
        parent_end.close()
    if isinstance(message, messages.Ready):
        return pid
    with suppress(ChildProcessError):
        os.waitpid(pid, 0)
    if isinstance(message, messages.Error):
        raise message.to_exception()
    raise DockyardError("exec: the process exited before it was ready")


def _child(record: ContainerRecord, ns_types: list[str], cgroup_dirs: dict[str, str],
           proc: Process, seccomp: object, options: ExecOptions,
           channel: messages.Channel) -> None:
    try:
        signals.reset()
        if options.stdio is not None:
            for target, fd in enumerate(options.stdio):
                os.dup2(fd, target)
        for path in cgroup_dirs.values():
            with open(os.path.join(path, "cgroup.procs"), "w") as handle:
                handle.write("0")
        sock = console.connect(options.console_socket) if options.console_socket else None
        order = ("user", "ipc", "uts", "network", "cgroup", "time", "mount")
        fds = {t: os.open(f"/proc/{record.pid}/ns/{namespaces.PROC_NAMES[t]}",
                          os.O_RDONLY | os.O_CLOEXEC) for t in order if t in ns_types}
        for ns_type, fd in fds.items():
            sc.setns(fd, namespaces.CLONE_FLAGS[ns_type], ns_type)
            os.close(fd)
            if ns_type == "user":  # as runc's setns stage: the namespace's root from here
                userns.become_root()
        if "mount" not in ns_types:  # the container shares our mount namespace: its
            os.chroot(f"/proc/{record.pid}/root")  # root is where its init chrooted
            os.chdir("/")
        if sock is not None:
            console.setup_in_container(sock, proc.console_size, bind_console=False)
        process.enter_cwd(proc.cwd)
        executable = process.lookup_executable(proc.args[0], proc.env)
        process.drop_privileges(proc, seccomp)  # type: ignore[arg-type]
        process.keep_fds(options.preserve_fds)
        channel.send(messages.Ready())
        channel.close()
        process.exec_process(proc, executable, seccomp)  # type: ignore[arg-type]
    except DockyardError as exc:
        _send(channel, messages.Error.from_exception(exc))
    except BaseException as exc:  # noqa: BLE001 - never unwind into the parent's code
        _send(channel, messages.Error("internal", f"exec failed: {exc}"))
    os._exit(127)


def _send(channel: messages.Channel, error: messages.Error) -> None:
    with suppress(OSError):
        channel.send(error)


def override(base: Process, *, args: tuple[str, ...] | None = None, env: tuple[str, ...] = (),
             cwd: str | None = None, terminal: bool | None = None) -> Process:
    """runc's rule: exec inherits the container's process, flags override or append."""
    return base._replace(
        args=args if args else base.args,
        env=base.env + env,
        cwd=cwd or base.cwd,
        terminal=base.terminal if terminal is None else terminal,
    )
