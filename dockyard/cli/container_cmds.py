"""The bodies of the hot container commands, without click: the click commands of
``cli.containers`` and the fast path (``cli.fast``) both call these, with the
flags their ``flagtable`` rows give.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dockyard import trace
from dockyard.cli.flagtable import Opt, opt
from dockyard.engine.engine import Engine
from dockyard.errors import DockyardError, InvalidArgument

if TYPE_CHECKING:
    from dockyard.engine.attach_socket import Frames

PS_OPTIONS: tuple[Opt, ...] = (
    opt("-a", "--all", dest="all_containers", kind="flag"),
    opt("-q", "--quiet", kind="flag"),
    opt("--no-trunc", kind="flag"),
    opt("-f", "--filter", dest="filters", kind="multi"),
    opt("--format", dest="fmt"),
)


EXEC_OPTIONS: tuple[Opt, ...] = (
    opt("-d", "--detach", kind="flag"),
    opt("-i", "--interactive", kind="flag", help="Keep stdin open (it always is)."),
    opt("-t", "--tty", kind="flag"),
    opt("-e", "--env", kind="multi"),
    opt("-u", "--user"),
    opt("-w", "--workdir"),
)


RM_OPTIONS: tuple[Opt, ...] = (
    opt("-f", "--force", kind="flag"),
    opt("-v", "--volumes", kind="flag", help="Remove anonymous volumes too."),
)


START_OPTIONS: tuple[Opt, ...] = (
    opt("-a", "--attach", dest="attach_output", kind="flag",
        help="Attach STDOUT/STDERR and forward signals; exit with the container's code."),
    opt("-i", "--interactive", kind="flag", help="Attach the container's STDIN."),
)


STOP_OPTIONS: tuple[Opt, ...] = (opt("-t", "--time", dest="timeout", type=int),)


KILL_OPTIONS: tuple[Opt, ...] = (opt("-s", "--signal", dest="sig", default="KILL"),)


def each(refs: tuple[str, ...], action: Callable[[str], object]) -> int:
    """Docker's multi-container behaviour: act on each, name each done, report each
    failure; the exit code 1 if any failed."""
    failed = False
    for ref in refs:
        try:
            action(ref)
            echo(ref)
        except DockyardError as exc:
            sys.stderr.write(f"Error: {exc.message}\n")
            sys.stderr.flush()
            failed = True
    return 1 if failed else 0


def start(engine: Engine, *containers: str, attach_output: bool, interactive: bool) -> int:
    """``start``: each container started; attached (``-a``/``-i``) to one, its exit
    code."""
    if not (attach_output or interactive):
        return each(containers, engine.containers.start)
    if len(containers) > 1:
        raise InvalidArgument("you cannot start and attach multiple containers at once")
    return start_attached(engine, containers[0], stdin=interactive)


def stop(engine: Engine, *containers: str, timeout: int | None) -> int:
    """``stop``: the stop signal, then SIGKILL after the timeout, to each."""
    return each(containers, lambda ref: engine.containers.stop(ref, timeout))


def restart(engine: Engine, *containers: str, timeout: int | None) -> int:
    """``restart``: each stopped, then started."""
    def again(ref: str) -> None:
        engine.containers.stop(ref, timeout)
        engine.containers.start(ref)

    return each(containers, again)


def kill(engine: Engine, *containers: str, sig: str) -> int:
    """``kill``: the signal (a name or a number) to each."""
    from dockyard.runtime.operations import parse_signal

    number = parse_signal(sig)
    return each(containers, lambda ref: engine.containers.kill(ref, number))


def echo(text: str) -> None:
    """A line on stdout (what click.echo does with a str)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run(engine: Engine, image: str, command: tuple[str, ...], *, detach: bool,
        **o: Any) -> int:
    """``run``: create and start; without ``detach``, show the output; the exit code."""
    from dockyard.cli.container_flags import spec_from_flags

    pull = o.pop("pull", "missing")
    spec = spec_from_flags(image, command, o)
    _image_for_run(engine, spec.image, pull)
    return run_created(engine, engine.containers.create(spec), detach=detach)


def start_attached(engine: Engine, ref: str, *, stdin: bool) -> int:
    """``start -a [-i]``: attached before it starts (as ``run``: no output is missed),
    or to it as it runs when it already does; stdin when asked and the container keeps
    it open (``-i`` at create), as Docker; the container's exit code."""
    from dockyard.cli.attach import attach

    service = engine.containers
    record = service.get(ref)
    if record.state not in ("running", "paused", "restarting"):
        service.start(record.id, attach=True)
    code = attach(service.bundle(record.id), tty_mode=record.spec.tty,
                  stdin=stdin and record.spec.stdin_open)
    if code is None:
        code = service.wait_exited(record.id, timeout=10**9).exit_code
    if record.spec.auto_remove:  # (`create --rm`: gone with its exit, as after `run`)
        service.remove_after_run(record.id)
    return code


def run_created(engine: Engine, record: Any, *, detach: bool) -> int:
    """The rest of ``run`` for a created container (``compose run`` makes its own):
    started attached or not; the exit code."""
    service = engine.containers
    spec = record.spec
    here = ""
    if not detach:
        from dockyard.cli.attach import attaches_at_start

        # with --rm the exit hook's work is taken over too: done here, where the
        # engine is open, while we wait for it anyway (``ContainerService.take_exit``)
        here = ("attach exit hook" if spec.auto_remove else "attach exit") \
            if attaches_at_start(spec.tty) else ""
    try:
        # Docker attaches before it starts: the supervisor creates the container and
        # waits for us, so the first byte of output comes to us from its stdio
        service.start(record.id, attach=not detach, attach_here=here)
    except BaseException:
        connected = service.attached(record.id)
        if connected is not None:  # (started, then failed: nobody would read it)
            connected.close()
        if spec.auto_remove:
            service.remove_after_run(record.id)
        raise
    if detach:
        echo(record.id)
        return 0
    from dockyard.cli.attach import attach

    removed = False

    def take_exit(frames: Frames) -> None:
        nonlocal removed
        trace.mark("attach ended: exit code in")
        # (a failure here leaves the work to the supervisor's hook, waited for below)
        with contextlib.suppress(DockyardError, OSError):
            removed = service.take_exit(record.id, frames)

    code = attach(service.bundle(record.id), tty_mode=spec.tty, stdin=spec.stdin_open,
                  connected=service.attached(record.id),
                  after_exit=take_exit if here.endswith(" hook") else None)
    trace.mark(f"attach ended: exit code {code}")
    if code is None:  # no word from the supervisor: what the record says (re-adopted...)
        code = service.wait_exited(record.id, timeout=10**9).exit_code
    if spec.auto_remove and not removed:  # removed with its anonymous volumes by its
        service.remove_after_run(record.id)  # exit hook: wait
    if spec.auto_remove:
        trace.mark("removed")
    return code


def rm(engine: Engine, *containers: str, force: bool, volumes: bool) -> int:
    """``rm``: Docker's multi-container behaviour — each removed is named, each failure
    reported, and the exit code 1 if any failed."""
    failed = False
    errors = engine.containers.remove_many(containers, force=force, volumes=volumes)
    for ref, error in zip(containers, errors, strict=True):
        if error is None:
            echo(ref)
        else:
            sys.stderr.write(f"Error: {error.message}\n")
            sys.stderr.flush()
            failed = True
    return 1 if failed else 0


def _image_for_run(engine: Engine, image: str, pull: str) -> None:
    """``run --pull``: as Docker, a missing image is pulled (under the signature policy)
    before the container is made."""
    if pull not in ("missing", "always", "never"):
        raise InvalidArgument(f'invalid pull option: "{pull}": must be one of "always", '
                              '"missing" or "never"')
    if pull == "never":
        return
    if pull == "missing":
        from dockyard.errors import ImageNotFound

        try:
            engine.images.get(image)
            return
        except ImageNotFound:
            sys.stderr.write(f"Unable to find image '{image}' locally\n")
            sys.stderr.flush()
    engine.pull_image(image)


def ps(engine: Engine, *, all_containers: bool, quiet: bool, no_trunc: bool,
       filters: tuple[str, ...], fmt: str | None) -> None:
    """``ps``: Docker's table (or ``--format``) of the containers."""
    records = engine.containers.list(all_containers=all_containers or bool(filters))
    for item in filters:
        key, _, value = item.partition("=")
        if key == "status":
            records = [r for r in records if r.state == value]
        elif key == "name":
            records = [r for r in records if value in r.name]
        elif key == "label":
            lk, _, lv = value.partition("=")
            records = [r for r in records if lk in r.spec.labels and
                       (not lv or r.spec.labels[lk] == lv)]
        elif key == "id":
            records = [r for r in records if r.id.startswith(value)]
        else:
            raise InvalidArgument(f"invalid filter {key!r}")
    if quiet:
        for record in records:
            echo(record.id if no_trunc else record.id[:12])
        return
    from dockyard.cli.render import container_fields, human_ago, render
    from dockyard.engine.inspect import command_of, health_of

    healths: dict[str, str] = {}
    for record in records:
        health = health_of(engine.containers.bundle(record.id))
        if health:
            healths[record.id] = health["Status"] if health["Status"] != "starting" \
                else "health: starting"
    whole = _needs_inspect(fmt)
    rows = []
    for r in records:
        if whole:  # once: COMMAND and the template's fields
            inspected = engine.containers.inspect_record(r)
            args = [inspected["Path"], *inspected["Args"]]
        else:
            args = command_of(r, engine.images)
        rows.append({
            "ID": r.id if no_trunc else r.id[:12], "Image": r.image,
            "Command": f'"{_command_text(args, no_trunc)}"',
            "RunningFor": human_ago(r.created), "Status": _status(r, healths.get(r.id)),
            "Ports": _ports(engine, r.id) if r.state in ("running", "paused") else "",
            "Names": r.name, "State": r.state,
            **(container_fields(inspected, not no_trunc) if whole else {})})
    echo(render(rows, ["ID", "Image", "Command", "RunningFor", "Status", "Ports",
                             "Names"], fmt,
                      {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
                       "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS",
                       "Names": "NAMES"}))


def _ports(engine: Engine, container_id: str) -> str:
    """Docker's PORTS column: 127.0.0.1:8080->80/tcp, …"""
    import json

    try:
        config = json.loads((engine.containers.bundle(container_id) / "network.json")
                            .read_text())
    except (OSError, ValueError):
        return ""
    return ", ".join(f"{ip or '0.0.0.0'}:{host}->{port}/{proto}"
                     for ip, host, port, proto in config.get("ports", []))


# what ``ps`` knows without inspecting each container
_PS_FIELDS = frozenset({"ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names",
                        "State"})


def _needs_inspect(fmt: str | None) -> bool:
    """Whether ``--format`` names a field that takes a whole inspect of each container
    (``CreatedAt``, ``Labels``, ``Mounts``…, or the whole row: ``{{json .}}``); the
    table and templates of the columns alone need only the command line."""
    if fmt in (None, "", "table"):
        return False
    import re

    actions = re.findall(r"\{\{(.*?)\}\}", fmt or "", re.S)
    if not actions:  # ``json``: every field of each row
        return True
    return any(name not in _PS_FIELDS for action in actions
               for name in re.findall(r"\.(\w*)", action))


def _command_text(args: list[str], no_trunc: bool) -> str:
    """Docker's COMMAND column: path and args, cut at 20 characters with an ellipsis."""
    text = " ".join(args)
    return text if no_trunc or len(text) <= 20 else text[:19] + "…"


def _status(record: Any, health: str | None = None) -> str:
    from dockyard.cli.render import human_ago

    if record.state == "restarting":  # Docker's: the exit code, and since when it waits
        return f"Restarting ({record.exit_code}) {human_ago(record.finished_at)}"
    if record.state in ("running", "paused"):
        up = "Up " + human_ago(record.started_at).removesuffix(" ago")
        if record.state == "paused":
            return up + " (Paused)"
        return f"{up} ({health})" if health else up
    if record.state == "created":
        return "Created"
    return f"Exited ({record.exit_code}) {human_ago(record.finished_at)}"


def exec_(engine: Engine, container: str, *command: str, detach: bool, interactive: bool,
          tty: bool, env: tuple[str, ...], user: str | None, workdir: str | None) -> int:
    """``exec``: the command in the running container, with this terminal's stdio; its
    exit code, or Docker's 127 (not found) / 126 (cannot be run)."""
    import signal
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dockyard-exec-") as scratch:
        log = os.path.join(scratch, "runtime.log")
        argv = engine.container_ops.exec_argv(container, command, env=env, user=user,
                                              workdir=workdir, tty=tty, detach=detach, log=log)
        sys.stdout.flush()
        # the terminal's ^C and ^\ reach the runtime (our process group); we outlive it
        # to map its exit, and pass on what is sent to us alone
        pid = _start_runtime(argv)
        for sig in (signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda number, _frame: os.kill(pid, number))
        _pid, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        failure = engine.container_ops.exec_failure(log) if code else None
    return failure or (128 - code if code < 0 else code)


def _start_runtime(argv: list[str]) -> int:
    """The runtime command ``argv`` as a child: our own runtime as a fork that calls its
    CLI's ``main`` (no second interpreter to start, ~20 ms), any other (runc) exec'd."""
    from dockyard.engine.runtime_command import runtime_argv

    own = runtime_argv()
    pid = os.fork()
    if pid == 0:
        code = 127
        try:
            if argv[:len(own)] == own:
                from dockyard.runtime.cli import main

                code = main(argv[len(own):])
            else:
                os.execvp(argv[0], argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - the child never returns into our code
            code = 1
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    return pid
