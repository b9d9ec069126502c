"""One function per ``dockyard-runtime`` subcommand: parse flags into library calls."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from dockyard import jsonlite, trace
from dockyard.errors import InvalidArgument
from dockyard.errors import RuntimeContainerNotFound as ContainerNotFound
from dockyard.runtime import operations
from dockyard.runtime.state import ContainerDir, status_of
from dockyard.stdlite import TYPE_CHECKING, posix_signal, suppress

if TYPE_CHECKING:  # the spec's types are imported where used: ``state`` and ``kill``
    from _typeshed import StrPath

    # need none of them (~2 ms of imports)
    from dockyard.oci.runtime_spec import Linux, Process
    from dockyard.runtime.stdio import PipeRelay


def dispatch(args: SimpleNamespace, root: StrPath) -> int:
    handler = _HANDLERS[args.subcommand]
    return handler(args, root)


def _create(args: SimpleNamespace, root: StrPath) -> int:
    from dockyard.runtime.bundle import load_bundle
    from dockyard.runtime.create import CreateOptions, create

    create(root, args.id, load_bundle(args.bundle), CreateOptions(
        console_socket=args.console_socket, pid_file=args.pid_file,
        preserve_fds=args.preserve_fds))
    return 0


def _run(args: SimpleNamespace, root: StrPath) -> int:
    from dockyard.runtime.bundle import load_bundle
    from dockyard.runtime.create import CreateOptions, create

    bundle = load_bundle(args.bundle)
    tty = None
    console_socket = args.console_socket
    assert bundle.spec.process is not None
    if bundle.spec.process.terminal and not console_socket and not args.detach:
        from dockyard.runtime.tty import TerminalReceiver

        tty = TerminalReceiver()
        console_socket = tty.path
    relay = None if args.detach or bundle.spec.process.terminal else _relay_for(
        bundle.spec.linux)
    try:
        record = create(root, args.id, bundle, CreateOptions(
            console_socket=console_socket, pid_file=args.pid_file,
            preserve_fds=args.preserve_fds,
            stdio=relay.container_ends() if relay is not None else None))
        if relay is not None:
            relay.close_container_ends()
        trace.mark("created")
        try:
            operations.start(root, args.id)
        except BaseException:
            operations.delete(root, args.id, force=True)
            raise
        trace.mark("started")
        if args.detach:
            return 0
        code = _wait_forwarding_signals(record.pid, tty, relay)
        trace.mark("container exited")
    finally:
        if tty is not None:
            tty.close()
        if relay is not None:
            relay.close()
    if not args.keep:
        with suppress(ContainerNotFound):
            operations.delete(root, args.id, force=True)
        trace.mark("deleted")
    return code


def _relay_for(linux: Linux) -> PipeRelay | None:
    """Pipes owned by the container's root, for a foreground container with a user
    namespace (see ``runtime.stdio``); None otherwise."""
    from dockyard.runtime.stdio import PipeRelay, host_root

    ids = host_root(linux)
    return PipeRelay(*ids) if ids is not None else None


def _wait_forwarding_signals(pid: int, tty: object, relay: PipeRelay | None = None) -> int:
    """Wait for our child ``pid``; pass on the signals a foreground runc forwards."""
    forwarded = (posix_signal.SIGINT, posix_signal.SIGTERM, posix_signal.SIGHUP,
                 posix_signal.SIGQUIT, posix_signal.SIGUSR1, posix_signal.SIGUSR2,
                 posix_signal.SIGWINCH)

    def forward(signum: int, _frame: object) -> None:
        with suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in forwarded:
        posix_signal.signal(sig, forward)
    if tty is not None:
        from dockyard.runtime.tty import TerminalReceiver

        assert isinstance(tty, TerminalReceiver)
        tty.proxy_until_exit(pid)
    if relay is not None:
        relay.pump_until_exit(pid)
    _pid, status = os.waitpid(pid, 0)
    return exit_code(status)


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _start(args: SimpleNamespace, root: StrPath) -> int:
    operations.start(root, args.id)
    return 0


def _state(args: SimpleNamespace, root: StrPath) -> int:
    print(jsonlite.dumps(operations.get_state(root, args.id), indent=2))
    return 0


def _kill(args: SimpleNamespace, root: StrPath) -> int:
    operations.kill(root, args.id, operations.parse_signal(args.signal), all_processes=args.all)
    return 0


def _delete(args: SimpleNamespace, root: StrPath) -> int:
    try:
        operations.delete(root, args.id, force=args.force)
    except ContainerNotFound:
        if not args.force:
            raise
    return 0


def _pause(args: SimpleNamespace, root: StrPath) -> int:
    operations.pause(root, args.id)
    return 0


def _resume(args: SimpleNamespace, root: StrPath) -> int:
    operations.resume(root, args.id)
    return 0


def _list(args: SimpleNamespace, root: StrPath) -> int:
    states = operations.list_states(root)
    if args.quiet:
        for item in states:
            print(item["id"])
    elif args.format == "json":
        print(jsonlite.dumps(states))
    else:
        row = "{:<12}{:<12}{:<12}{:<40}{:<32}{}"
        print(row.format("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"))
        for item in states:
            print(row.format(str(item["id"]), str(item["pid"]), str(item["status"]),
                             str(item["bundle"]), str(item["created"]), "root"))
    return 0


def _ps(args: SimpleNamespace, root: StrPath) -> int:
    pids = operations.pids(root, args.id)
    if args.format == "json":
        print(jsonlite.dumps(pids))
        return 0
    import subprocess

    out = subprocess.run(["ps", *(args.ps_args or ["-ef"])], capture_output=True, text=True,
                         check=False).stdout.splitlines()
    if not out:
        return 0
    header, rows = out[0], out[1:]
    column = header.split().index("PID")
    print(header)
    for line in rows:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            print(line)
    return 0


def _exec(args: SimpleNamespace, root: StrPath) -> int:
    from dockyard.oci.runtime_spec import parse_process, parse_spec
    from dockyard.runtime import exec as exec_mod

    cdir = ContainerDir(root, args.id)
    record = cdir.load()
    if args.process:
        with open(args.process, "rb") as handle:
            proc = parse_process(jsonlite.loads(handle.read()), "process")
    else:
        if not args.command:
            raise InvalidArgument("exec: a command or --process is required")
        proc = exec_mod.override(exec_mod.base_process(record), args=tuple(args.command),
                                 env=tuple(args.env), cwd=args.cwd, terminal=args.tty)
        proc = _apply_exec_flags(proc, args)
    tty = None
    console_socket = args.console_socket
    if proc.terminal and not console_socket:
        if args.detach:
            raise InvalidArgument("cannot allocate tty if runc will detach without setting "
                                  "console socket")
        from dockyard.runtime.tty import TerminalReceiver

        tty = TerminalReceiver()
        console_socket = tty.path
    relay = None
    if not args.detach and not proc.terminal:
        relay = _relay_for(parse_spec(record.config).linux)
    try:
        pid = exec_mod.exec_in(cdir, proc, exec_mod.ExecOptions(
            console_socket=console_socket, preserve_fds=args.preserve_fds,
            stdio=relay.container_ends() if relay is not None else None))
        if relay is not None:
            relay.close_container_ends()
        if args.pid_file:
            from dockyard.runtime.create import write_pid_file

            write_pid_file(args.pid_file, pid)
        if args.detach:
            return 0
        return _wait_forwarding_signals(pid, tty, relay)
    finally:
        if tty is not None:
            tty.close()
        if relay is not None:
            relay.close()


def _apply_exec_flags(proc: Process, args: SimpleNamespace) -> Process:
    from dockyard.oci.runtime_spec import Capabilities, User

    if args.user:
        uid, _, gid = args.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise InvalidArgument(f"--user: want UID[:GID] as numbers, got {args.user!r}")
        proc = proc._replace(user=User(uid=int(uid), gid=int(gid or 0),
                                       additional_gids=tuple(args.additional_gids)))
    if args.cap and proc.capabilities is not None:
        caps = proc.capabilities
        extra = tuple(args.cap)
        proc = proc._replace(capabilities=Capabilities(
            bounding=caps.bounding + extra, effective=caps.effective + extra,
            inheritable=caps.inheritable, permitted=caps.permitted + extra,
            ambient=caps.ambient))
    if args.no_new_privs:
        proc = proc._replace(no_new_privileges=True)
    return proc


def _update(args: SimpleNamespace, root: StrPath) -> int:
    from dockyard.oci.runtime_spec import _parse_resources, _Reader

    cdir = ContainerDir(root, args.id)
    record = cdir.load()
    body: dict[str, object] = {}
    if args.resources:
        if args.resources == "-":
            text = sys.stdin.read()
        else:
            with open(args.resources) as handle:
                text = handle.read()
        body = jsonlite.loads(text)
    mem = dict(body.get("memory") or {})  # type: ignore[call-overload]
    cpu = dict(body.get("cpu") or {})  # type: ignore[call-overload]
    for key, value in (("limit", args.memory), ("swap", args.memory_swap),
                       ("reservation", args.memory_reservation)):
        if value is not None:
            mem[key] = value
    for key, value in (("shares", args.cpu_shares), ("quota", args.cpu_quota),
                       ("period", args.cpu_period)):
        if value is not None:
            cpu[key] = value
    body["memory"], body["cpu"] = mem, cpu
    if args.pids_limit is not None:
        body["pids"] = {"limit": args.pids_limit}
    if args.blkio_weight is not None:
        body["blockIO"] = {**dict(body.get("blockIO") or {}),  # type: ignore[call-overload]
                           "weight": args.blkio_weight}
    resources = _parse_resources(_Reader(body, "resources"))
    if status_of(cdir, record) == "stopped":
        raise InvalidArgument(f"container {args.id} is not running")
    record.cgroup_manager().set(resources)
    return 0


def _features(_args: SimpleNamespace, _root: StrPath) -> int:
    from dockyard.runtime.features import features

    print(jsonlite.dumps(features(), indent=4))
    return 0


def _spec(args: SimpleNamespace, _root: StrPath) -> int:
    from dockyard.runtime.spec import default_spec

    target = os.path.join(args.bundle, "config.json")
    if os.path.exists(target):
        raise InvalidArgument(f"File {target} exists. Remove it first")
    with open(target, "w") as handle:
        handle.write(jsonlite.dumps(default_spec(), indent=2) + "\n")
    return 0


_HANDLERS = {
    "create": _create, "run": _run, "start": _start, "state": _state, "kill": _kill,
    "delete": _delete, "pause": _pause, "resume": _resume, "list": _list, "ps": _ps,
    "exec": _exec, "update": _update, "features": _features, "spec": _spec,
}
