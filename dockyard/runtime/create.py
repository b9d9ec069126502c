"""``create``: the parent stage that forks the container init and records it.

Sequence: validate everything that can be validated (spec, capabilities,
rlimits, seccomp compiled, namespace paths) *before* anything exists; then make
the state dir, the exec fifo and the cgroup, fork the init (inside a new pid
namespace when asked), serve its hook request, wait for ``Ready``, and save the
record.  Every step registers its undo on an ``ExitStack``, so a failure leaves
nothing mounted, running or registered; a step and the registration of its undo
are one (``interrupts.held``), so an interrupt (a create helper's supervisor dying)
never comes between them.
"""

from __future__ import annotations

import os

from dockyard import trace
from dockyard.errors import DockyardError, InternalError, InvalidArgument
from dockyard.runtime import hooks, messages
from dockyard.runtime.bundle import Bundle
from dockyard.runtime.init import InitContext, check_spec, run_init
from dockyard.runtime.interrupts import Undo, held
from dockyard.runtime.linux import capabilities, cgroups, namespaces, rlimits, rootfs, userns
from dockyard.runtime.linux import syscalls as sc
from dockyard.runtime.linux.cgroups.plan import spec_device_lines
from dockyard.runtime.linux.seccomp import SECCOMP_CACHE, compile_filter
from dockyard.runtime.state import (
    ContainerDir,
    ContainerRecord,
    now_rfc3339,
    process_start_time,
)
from dockyard.stdlite import TYPE_CHECKING, NamedTuple, posix_signal, suppress
from dockyard.store.atomic import atomic_write
from dockyard.supervise.process import pause_at

if TYPE_CHECKING:
    from _typeshed import StrPath


class CreateOptions(NamedTuple):
    console_socket: str | None = None
    pid_file: str | None = None
    preserve_fds: int = 0
    cgroup_root: str = cgroups.DEFAULT_ROOT
    stdio: tuple[int, int, int] | None = None  # the init's fds 0-2, if not ours


def _validate(bundle: Bundle, options: CreateOptions) -> None:
    spec = bundle.spec
    check_spec(spec)
    assert spec.process is not None
    if spec.process.capabilities is not None:
        capabilities.validate(spec.process.capabilities)
    for limit in spec.process.rlimits:
        rlimits.resource_number(limit.type)
    userns.check(spec.linux, spec.process)
    if spec.process.terminal and not options.console_socket:
        raise InvalidArgument("cannot allocate tty if runc will detach without setting "
                              "console socket")
    if not spec.process.terminal and options.console_socket:
        raise InvalidArgument("cannot use console socket if runc will not detach or allocate tty")


def create(
    root: StrPath, container_id: str, bundle: Bundle, options: CreateOptions
) -> ContainerRecord:
    """Create the container; on return its init blocks until ``start``."""
    _validate(bundle, options)
    spec = bundle.spec
    ns_plan = namespaces.plan(spec.linux)
    namespaces.check_paths(ns_plan)
    seccomp = compile_filter(spec.linux.seccomp, SECCOMP_CACHE) \
        if spec.linux.seccomp else None
    trace.mark("runtime: config read, seccomp compiled")
    cdir = ContainerDir(root, container_id)
    with Undo() as undo:
        with held():  # each step with its undo, or neither (see ``interrupts``)
            cdir.make()
            pause_at("runtime-folder-made", bundle.path)  # (tests only)
            undo.callback(cdir.remove)
        os.mkfifo(cdir.fifo, 0o622)
        os.chmod(cdir.fifo, 0o622)  # the umask stripped the write bits a non-root init needs
        manager = cgroups.open_manager(spec.linux.cgroups_path or container_id, options.cgroup_root)
        with held():
            manager.create()
            undo.callback(manager.destroy)
        manager.set(spec.linux.resources, spec_device_lines(spec.linux.devices))
        trace.mark("runtime: cgroup made and set")
        record = ContainerRecord(
            id=container_id, bundle=bundle.path, rootfs=bundle.rootfs, created=now_rfc3339(),
            annotations=spec.annotations, cgroup=manager.to_dict(), config=bundle.raw,
        )
        shares_mounts = spec.linux.namespace("mount") is None
        if shares_mounts:  # the init mounts in our namespace: undo must find them
            mounts_before = {entry.id for entry in rootfs.mount_table()}
            undo.callback(_unmount_made, bundle.rootfs, mounts_before)
        parent_end, child_end = messages.channel_pair()
        ctx = InitContext(
            spec=spec, container_id=container_id, bundle=bundle.path, rootfs=bundle.rootfs,
            ns_plan=ns_plan, cgroup_dirs=manager.mount_paths(), channel=parent_end,
            fifo_path=str(cdir.fifo), console_socket=options.console_socket,
            preserve_fds=options.preserve_fds, seccomp=seccomp, stdio=options.stdio,
        )
        with held():
            pid = _spawn_init(ctx, child_end)
            undo.callback(_kill_and_reap, pid)
        trace.mark("runtime: init forked")
        join_error = _join_cgroup(ctx, manager, pid)
        _serve_init(ctx, record, pid, join_error)
        trace.mark("runtime: init ready")
        start_time = process_start_time(pid)
        if start_time is None:
            raise InternalError("container init exited right after setting up")
        record = record._replace(pid=pid, pid_start=start_time)
        if shares_mounts:
            record = record._replace(host_mounts=tuple(
                rootfs.mounts_made_under(bundle.rootfs, mounts_before)))
        cdir.save(record)
        if options.pid_file:
            write_pid_file(options.pid_file, pid)
        undo.pop_all()
    return record


def write_pid_file(path: str, pid: int) -> None:
    atomic_write(os.path.abspath(path), str(pid).encode(), 0o644, durable=False)


def _spawn_init(ctx: InitContext, child_end: messages.Channel) -> int:
    """Fork the init, inside the new (or joined) pid namespace when the spec asks."""
    if ctx.ns_plan.has_user_namespace:
        return _spawn_in_user_namespace(ctx, child_end)
    pid = namespaces.fork_in_pid_namespace(new=ctx.ns_plan.new_pid,
                                           join_path=ctx.ns_plan.join_pid)
    if pid == 0:
        ctx.channel.close()
        run_init(ctx._replace(channel=child_end))  # never returns
    child_end.close()
    return pid


def _spawn_in_user_namespace(ctx: InitContext, child_end: messages.Channel) -> int:
    """Fork the init's first stage (see ``init._enter_namespaces_in_two_stages``), map
    its user namespace, and adopt the init it forks: while the first stage runs we
    are a child subreaper, so its orphan becomes our child, as a one-stage init is
    (``run`` waits for it; the supervisor adopts it when our helper exits)."""
    was_subreaper = sc.is_child_subreaper()
    if not was_subreaper:
        sc.set_child_subreaper(True)
    try:
        stage = os.fork()
        if stage == 0:
            ctx.channel.close()
            run_init(ctx._replace(channel=child_end))  # never returns
        child_end.close()
        try:
            return _serve_first_stage(ctx, stage)
        except BaseException:
            _kill_and_reap(stage)
            ctx.channel.close()
            raise
    finally:
        if not was_subreaper:
            sc.set_child_subreaper(False)


def _serve_first_stage(ctx: InitContext, stage: int) -> int:
    """Write the first stage's mappings when it asks; return the init's pid once the
    first stage is gone (the init is then our child)."""
    while True:
        message = ctx.channel.receive()
        if message is None:
            _pid, status = os.waitpid(stage, 0)
            raise InternalError(f"container init exited before it was ready "
                                f"(status {os.waitstatus_to_exitcode(status)})")
        if isinstance(message, messages.Error):
            raise message.to_exception()
        if isinstance(message, messages.MapUser):
            userns.write_mappings(stage, ctx.spec.linux)
            ctx.channel.send(messages.Mapped())
        elif isinstance(message, messages.InitPid):
            os.waitpid(stage, 0)
            return message.pid
        else:
            raise InternalError(f"container init: unexpected {type(message).__name__}")


def _join_cgroup(ctx: InitContext, manager: cgroups.CgroupManager,
                 pid: int) -> BaseException | None:
    """Move the init into its cgroup and tell it so.

    On failure, stop talking to the init (it sees EOF and exits) and keep the
    error: if the init failed first, its own message explains better.
    """
    try:
        manager.add(pid)
        ctx.channel.send(messages.Joined())
    except (OSError, DockyardError) as exc:
        os.close(ctx.channel.write_fd)
        ctx.channel.write_fd = -1
        return exc
    return None


def _serve_init(ctx: InitContext, record: ContainerRecord, pid: int,
                join_error: BaseException | None = None) -> None:
    """Answer the init's requests until it reports Ready or fails."""
    try:
        while True:
            message = ctx.channel.receive()
            if message is None:
                _pid, status = os.waitpid(pid, 0)
                if join_error is not None:
                    raise join_error
                raise InternalError(f"container init exited before it was ready "
                                    f"(status {os.waitstatus_to_exitcode(status)})")
            if isinstance(message, messages.Error):
                raise message.to_exception()
            if isinstance(message, messages.Ready):
                return
            if isinstance(message, messages.RunHooks):
                state = {"ociVersion": ctx.spec.oci_version, "id": record.id,
                         "status": "creating", "pid": pid, "bundle": record.bundle,
                         "annotations": record.annotations}
                for kind in ("prestart", "createRuntime"):
                    hooks.run_hooks(ctx.spec.hooks.get(kind, ()), state, kind)
                ctx.channel.send(messages.Proceed())
    finally:
        ctx.channel.close()


def _unmount_made(rootfs_path: str, before: set[int]) -> None:
    rootfs.unmount_made(rootfs.mounts_made_under(rootfs_path, before))


def _kill_and_reap(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, posix_signal.SIGKILL)
    with suppress(ChildProcessError):
        os.waitpid(pid, 0)
