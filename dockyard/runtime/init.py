"""The container init stage: runs in the forked child, ends in execve or os._exit.

It enters or creates namespaces (in two stages with a user namespace, as runc:
see ``_enter_namespaces_in_two_stages``), builds the rootfs, pivots,
drops privileges, reports ``Ready`` and blocks opening the exec fifo until
``start`` opens the other end.  Any failure is sent to the parent as an ``Error``
message; nothing here returns into the parent's code.
"""

from __future__ import annotations

import os
import sys

from dockyard import trace
from dockyard.errors import DockyardError, InvalidSpec
from dockyard.oci.runtime_spec import Spec
from dockyard.runtime import hooks, messages, process
from dockyard.runtime.linux import namespaces, network, rootfs, signals, userns
from dockyard.runtime.linux import syscalls as sc
from dockyard.runtime.linux.seccomp import SeccompFilter
from dockyard.stdlite import NamedTuple, posix_signal


class InitContext(NamedTuple):
    spec: Spec
    container_id: str
    bundle: str
    rootfs: str
    ns_plan: namespaces.NamespacePlan
    cgroup_dirs: dict[str, str]
    channel: messages.Channel
    fifo_path: str
    console_socket: str | None
    preserve_fds: int
    seccomp: SeccompFilter | None
    stdio: tuple[int, int, int] | None = None  # fds 0-2 to give the container


def run_init(ctx: InitContext) -> None:
    """Entry point in the child; never returns."""
    try:
        signals.reset()  # first: hooks and the container process start from it
        if ctx.stdio is not None:
            for target, fd in enumerate(ctx.stdio):
                os.dup2(fd, target)
        _init(ctx)
    except DockyardError as exc:
        _report(ctx, messages.Error.from_exception(exc))
    except OSError as exc:
        _report(ctx, messages.Error("internal", f"container init: {exc}"))
    except BaseException as exc:  # noqa: BLE001 - a child must never unwind into the parent
        detail = f"{type(exc).__name__}: {exc}"
        _report(ctx, messages.Error("internal", f"container init failed: {detail}"))
    os._exit(1)


def _report(ctx: InitContext, error: messages.Error) -> None:
    try:
        ctx.channel.send(error)
    except OSError:
        print(f"dockyard-runtime init: {error.message}", file=sys.stderr)


def _state(ctx: InitContext, status: str) -> dict[str, object]:
    return {"ociVersion": ctx.spec.oci_version, "id": ctx.container_id, "status": status,
            "pid": os.getpid(), "bundle": ctx.bundle, "annotations": ctx.spec.annotations}


def _init(ctx: InitContext) -> None:
    spec = ctx.spec
    proc = spec.process
    assert proc is not None
    waiter = _Waiter(ctx.channel)
    trace.mark("init: forked")
    # opened while we are the runtime's root in its namespaces: the fifo, the
    # namespaces joined late and the console socket may be out of the reach of a
    # joined mount namespace or of a user namespace's root
    fifo_fd = os.open(ctx.fifo_path, os.O_PATH | os.O_CLOEXEC)
    cgroup_ns_fds = [os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                     for ns_type, path in ctx.ns_plan.joins if ns_type == "cgroup"]
    console_sock = None
    if ctx.console_socket:
        from dockyard.runtime.linux import console

        console_sock = console.connect(ctx.console_socket)
    process.write_oom_score_adj(proc.oom_score_adj)  # privileged: it may be negative
    if ctx.ns_plan.has_user_namespace:
        _enter_namespaces_in_two_stages(ctx, waiter)  # returns in the second
    else:
        namespaces.join_opened(namespaces.open_all(
            [(t, path) for t, path in ctx.ns_plan.joins if t != "cgroup"]))
        sc.unshare(ctx.ns_plan.unshare_flags & ~sc.CLONE_NEWCGROUP)
    trace.mark("init: namespaces made")
    if ctx.ns_plan.unshare_flags & sc.CLONE_NEWNET and \
            spec.annotations.get(network.LOOPBACK_ANNOTATION) == "up":
        network.loopback_up()
        trace.mark("init: loopback up")
    if spec.hooks.get("prestart") or spec.hooks.get("createRuntime"):
        ctx.channel.send(messages.RunHooks())
        waiter.wait_for(messages.Proceed)
    own_mount_ns = ctx.ns_plan.own_mount_namespace
    rootfs.prepare(spec, ctx.rootfs, ctx.bundle, ctx.cgroup_dirs, own_namespace=own_mount_ns,
                   user_namespace=ctx.ns_plan.has_user_namespace)
    trace.mark("init: rootfs mounts done")
    if spec.hooks.get("createContainer"):
        hooks.run_hooks(spec.hooks["createContainer"], _state(ctx, "creating"), "createContainer")
    rootfs.enter(ctx.rootfs, own_namespace=own_mount_ns)
    rootfs.finalize(spec, own_namespace=own_mount_ns)
    trace.mark("init: pivoted and finalized")
    if spec.hostname:
        sc.sethostname(spec.hostname)
    if spec.domainname:
        sc.setdomainname(spec.domainname)
    if console_sock is not None:
        from dockyard.runtime.linux import console

        console.setup_in_container(console_sock, proc.console_size)
    # as late as possible (the runtime's cgroup.procs write overlaps all of the
    # above), but while we still hold CAP_SYS_ADMIN for setns/unshare
    waiter.wait_for(messages.Joined)  # a cgroup namespace is rooted where we are now
    trace.mark("init: cgroup joined")
    for fd in cgroup_ns_fds:
        sc.setns(fd, sc.CLONE_NEWCGROUP, "cgroup namespace")
        os.close(fd)
    if ctx.ns_plan.unshare_flags & sc.CLONE_NEWCGROUP:
        sc.unshare(sc.CLONE_NEWCGROUP)
    process.enter_cwd(proc.cwd)
    executable = process.lookup_executable(proc.args[0], proc.env)
    process.drop_privileges(proc, ctx.seccomp)
    trace.mark("init: privileges dropped")
    process.keep_fds(ctx.preserve_fds)
    ctx.channel.send(messages.Ready())
    ctx.channel.close()
    _wait_for_start(fifo_fd)
    if spec.hooks.get("startContainer"):
        hooks.run_hooks(spec.hooks["startContainer"], _state(ctx, "running"), "startContainer")
    process.exec_process(proc, executable, ctx.seccomp)


def _enter_namespaces_in_two_stages(ctx: InitContext, waiter: _Waiter) -> None:
    """runc's nsexec order, for a config with a user namespace.

    This first stage joins every namespace given by path (user first, pid too), makes
    the new user namespace and has the runtime map it, becomes its root, then
    unshares the rest -- pid included, so that every new namespace is owned by the
    user namespace (a pid namespace the runtime made would be the host's, and /proc
    could not be mounted for it).  Only children enter a new pid namespace: the
    first stage forks the init, reports its pid and exits; the runtime, a child
    subreaper meanwhile, inherits the init.  Returns in the init only.
    """
    plan = ctx.ns_plan
    namespaces.join_opened(namespaces.open_all(
        [(t, path) for t, path in plan.all_joins() if t != "cgroup"]))
    if plan.new_user:
        sc.unshare(sc.CLONE_NEWUSER)
        ctx.channel.send(messages.MapUser())
        waiter.wait_for(messages.Mapped)
    else:
        userns.check_joined(ctx.spec.linux, plan.join_user)
    userns.become_root_user()
    sc.unshare((plan.unshare_flags & ~sc.CLONE_NEWCGROUP)
               | (sc.CLONE_NEWPID if plan.new_pid else 0))
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the init: wait until the runtime knows its pid
        os.close(go_write)
        go = os.read(go_read, 1)
        os.close(go_read)
        if go != b"1":
            os._exit(1)
        userns.become_root_group()
        return
    os.close(go_read)
    try:
        ctx.channel.send(messages.InitPid(pid))
        os.write(go_write, b"1")
    except BaseException:
        os.kill(pid, posix_signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    os._exit(0)


class _Waiter:
    """Reads the runtime's messages in order, remembering what already arrived."""

    def __init__(self, channel: messages.Channel) -> None:
        self.channel = channel
        self.seen: set[type] = set()

    def wait_for(self, kind: type) -> None:
        while kind not in self.seen:
            message = self.channel.receive()
            if message is None:
                os._exit(1)  # the runtime went away: nobody to report to
            self.seen.add(type(message))


def _wait_for_start(fifo_fd: int) -> None:
    """Block until ``start`` opens the fifo for reading, then hand it a byte.

    After a uid switch the kernel marks us non-dumpable, which makes /proc/self/fd
    root-owned and unopenable; execve resets the flag, so setting it here is safe.
    """
    sc.prctl(sc.PR_SET_DUMPABLE, 1)
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    os.close(fd)
    os.close(fifo_fd)


def check_spec(spec: Spec) -> None:
    """Checks the init would otherwise hit half-way; run by the parent, before forking."""
    if spec.process is None:
        raise InvalidSpec("process: missing (required to create a container)")
    ns_types = {ns.type for ns in spec.linux.namespaces}
    if "mount" not in ns_types:  # the container shares the runtime's mount namespace
        if spec.linux.masked_paths or spec.linux.readonly_paths:
            raise InvalidSpec("unable to restrict sys entries without a private MNT namespace")
        if spec.linux.rootfs_propagation:  # runc would change the host's own mounts
            raise InvalidSpec("linux.rootfsPropagation: needs a mount namespace (without one "
                              "it would change the propagation of the host's mounts)")
    if (spec.hostname or spec.domainname) and "uts" not in ns_types:
        raise InvalidSpec("hostname: setting it needs a private uts namespace")
    if spec.linux.namespace("cgroup") is None and any(m.type == "cgroup" for m in spec.mounts):
        pass  # bind mounts of the container's own cgroup work without a cgroup namespace
