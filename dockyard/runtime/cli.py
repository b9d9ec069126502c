"""``dockyard-runtime``: runc's command line over the runtime library.

argparse rather than click here on purpose: this binary sits on every container
start path, and containerd/dockerd invoke it several times per container, so its
import cost is measured (bench/runtime_start.py) and kept to the standard library.
Errors print one line (and a JSON line to ``--log`` for containerd) and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from dockyard import trace
from dockyard.errors import DockyardError
from dockyard.runtime import log

DEFAULT_ROOT = "/run/dockyard-runtime"


_GLOBAL_WITH_VALUE = {"--root", "--log", "--log-format", "--rootless", "--criu"}


def _subcommand_in(argv: list[str]) -> str | None:
    """The subcommand named in ``argv``, skipping global options and their values."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _GLOBAL_WITH_VALUE:
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return arg
    return None


def _add_create(cmd: argparse.ArgumentParser, *, run: bool) -> None:
    cmd.add_argument("-b", "--bundle", default=".")
    cmd.add_argument("--console-socket", default=None)
    cmd.add_argument("--pid-file", default=None)
    cmd.add_argument("--no-pivot", action="store_true")
    cmd.add_argument("--no-new-keyring", action="store_true")
    cmd.add_argument("--preserve-fds", type=int, default=0)
    if run:
        cmd.add_argument("-d", "--detach", action="store_true")
        cmd.add_argument("--keep", action="store_true")


def _add_kill(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("signal", nargs="?", default="SIGTERM")
    cmd.add_argument("-a", "--all", action="store_true")


def _add_delete(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("-f", "--force", action="store_true")


def _add_ps(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("-f", "--format", default="table", choices=["table", "json"])
    cmd.add_argument("ps_args", nargs="*")


def _add_list(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("-f", "--format", default="table", choices=["table", "json"])
    cmd.add_argument("-q", "--quiet", action="store_true")


def _add_exec(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("command", nargs=argparse.REMAINDER)
    cmd.add_argument("-p", "--process", default=None)
    cmd.add_argument("--console-socket", default=None)
    cmd.add_argument("--cwd", default=None)
    cmd.add_argument("-e", "--env", action="append", default=[])
    cmd.add_argument("-t", "--tty", action="store_true")
    cmd.add_argument("-u", "--user", default=None)
    cmd.add_argument("-g", "--additional-gids", action="append", type=int, default=[])
    cmd.add_argument("-c", "--cap", action="append", default=[])
    cmd.add_argument("--no-new-privs", action="store_true")
    cmd.add_argument("-d", "--detach", action="store_true")
    cmd.add_argument("--pid-file", default=None)
    cmd.add_argument("--preserve-fds", type=int, default=0)
    cmd.add_argument("--process-label", default=None)
    cmd.add_argument("--apparmor", default=None)
    cmd.add_argument("--ignore-paused", action="store_true")


def _add_update(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("-r", "--resources", default=None)
    cmd.add_argument("-m", "--memory", type=int, default=None)
    cmd.add_argument("--memory-swap", type=int, default=None)
    cmd.add_argument("--pids-limit", type=int, default=None)
    cmd.add_argument("--cpu-shares", type=int, default=None)
    cmd.add_argument("--cpu-quota", type=int, default=None)
    cmd.add_argument("--cpu-period", type=int, default=None)
    cmd.add_argument("--blkio-weight", type=int, default=None)


def _add_spec(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("-b", "--bundle", default=".")
    cmd.add_argument("--rootless", action="store_true")


def _no_args(cmd: argparse.ArgumentParser) -> None:
    pass


# name -> (help, takes a container id, adds its own arguments)
_COMMANDS: dict[str, tuple[str, bool, Callable[[argparse.ArgumentParser], None]]] = {
    "create": ("create a container", True, lambda c: _add_create(c, run=False)),
    "run": ("create and start a container", True, lambda c: _add_create(c, run=True)),
    "start": ("start a created container", True, _no_args),
    "state": ("print the state of a container", True, _no_args),
    "pause": ("freeze every process of a container", True, _no_args),
    "resume": ("thaw a paused container", True, _no_args),
    "kill": ("send a signal to the container's init", True, _add_kill),
    "delete": ("delete a stopped container", True, _add_delete),
    "ps": ("list the processes of a container", True, _add_ps),
    "list": ("list containers", False, _add_list),
    "exec": ("run a process in a running container", True, _add_exec),
    "update": ("update a container's resource limits", True, _add_update),
    "features": ("print the features this runtime supports", False, _no_args),
    "spec": ("write a default config.json", False, _add_spec),
}


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that subcommand's (argparse setup is ~1 ms each
    subcommand, and this binary runs several times per container start)."""
    p = argparse.ArgumentParser(prog="dockyard-runtime",
                                description="An OCI runtime with runc's command line.")
    p.add_argument("--root", default=os.environ.get("DOCKYARD_RUNTIME_ROOT", DEFAULT_ROOT))
    p.add_argument("--log", default=None)
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true")
    p.add_argument("--rootless", default="auto")
    p.add_argument("--criu", default=None)
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="subcommand")
    for name, (help_text, takes_id, add_arguments) in _COMMANDS.items():
        if only is not None and name != only:
            continue
        cmd = sub.add_parser(name, help=help_text)
        if takes_id:
            cmd.add_argument("id")
        add_arguments(cmd)
    return p


def main(argv: list[str] | None = None) -> int:
    trace.begin("runtime")
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    finally:
        trace.report()


def _main(argv: list[str]) -> int:
    wanted = _subcommand_in(argv)
    if wanted in ("create", "run"):
        from dockyard.runtime.linux.cgroup_peek import warm_attach_lock

        warm_attach_lock()  # the init's cgroup move, ~15 ms from now, is then quick
    args = _parser(wanted if wanted in _COMMANDS else None).parse_args(argv)
    trace.mark("arguments parsed")
    log.configure(args.log, args.log_format)
    if args.version:
        print("dockyard-runtime version 0.1.0\nspec: 1.2.0")
        return 0
    if not args.subcommand:
        _parser().print_help()
        return 0
    try:
        if args.systemd_cgroup:
            from dockyard.errors import NotImplementedFeature

            raise NotImplementedFeature("--systemd-cgroup is not supported; use cgroupfs")
        from dockyard.runtime import commands

        return commands.dispatch(args, Path(args.root))
    except DockyardError as exc:
        log.error(exc.message + (f" ({exc.hint})" if exc.hint else ""))
        return 1
    except KeyboardInterrupt:
        return 130


def run_main() -> None:
    """Console-script entry: skips interpreter teardown (module and GC finalization
    cost a few ms, on every call containerd makes)."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def dumps(value: object) -> str:
    return json.dumps(value, indent=2)


if __name__ == "__main__":
    run_main()
