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
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.runtime import log

DEFAULT_ROOT = "/run/dockyard-runtime"


def _parser() -> argparse.ArgumentParser:
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

    def container_cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("id")
        return cmd

    for name in ("create", "run"):
        cmd = container_cmd(name, f"{name} a container")
        cmd.add_argument("-b", "--bundle", default=".")
        cmd.add_argument("--console-socket", default=None)
        cmd.add_argument("--pid-file", default=None)
        cmd.add_argument("--no-pivot", action="store_true")
        cmd.add_argument("--no-new-keyring", action="store_true")
        cmd.add_argument("--preserve-fds", type=int, default=0)
        if name == "run":
            cmd.add_argument("-d", "--detach", action="store_true")
            cmd.add_argument("--keep", action="store_true")
    container_cmd("start", "start a created container")
    container_cmd("state", "print the state of a container")
    container_cmd("pause", "freeze every process of a container")
    container_cmd("resume", "thaw a paused container")
    kill = container_cmd("kill", "send a signal to the container's init")
    kill.add_argument("signal", nargs="?", default="SIGTERM")
    kill.add_argument("-a", "--all", action="store_true")
    delete = container_cmd("delete", "delete a stopped container")
    delete.add_argument("-f", "--force", action="store_true")
    ps = container_cmd("ps", "list the processes of a container")
    ps.add_argument("-f", "--format", default="table", choices=["table", "json"])
    ps.add_argument("ps_args", nargs="*")
    lst = sub.add_parser("list", help="list containers")
    lst.add_argument("-f", "--format", default="table", choices=["table", "json"])
    lst.add_argument("-q", "--quiet", action="store_true")
    ex = container_cmd("exec", "run a process in a running container")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.add_argument("-p", "--process", default=None)
    ex.add_argument("--console-socket", default=None)
    ex.add_argument("--cwd", default=None)
    ex.add_argument("-e", "--env", action="append", default=[])
    ex.add_argument("-t", "--tty", action="store_true")
    ex.add_argument("-u", "--user", default=None)
    ex.add_argument("-g", "--additional-gids", action="append", type=int, default=[])
    ex.add_argument("-c", "--cap", action="append", default=[])
    ex.add_argument("--no-new-privs", action="store_true")
    ex.add_argument("-d", "--detach", action="store_true")
    ex.add_argument("--pid-file", default=None)
    ex.add_argument("--preserve-fds", type=int, default=0)
    ex.add_argument("--process-label", default=None)
    ex.add_argument("--apparmor", default=None)
    ex.add_argument("--ignore-paused", action="store_true")
    upd = container_cmd("update", "update a container's resource limits")
    upd.add_argument("-r", "--resources", default=None)
    upd.add_argument("-m", "--memory", type=int, default=None)
    upd.add_argument("--memory-swap", type=int, default=None)
    upd.add_argument("--pids-limit", type=int, default=None)
    upd.add_argument("--cpu-shares", type=int, default=None)
    upd.add_argument("--cpu-quota", type=int, default=None)
    upd.add_argument("--cpu-period", type=int, default=None)
    sub.add_parser("features", help="print the features this runtime supports")
    spec = sub.add_parser("spec", help="write a default config.json")
    spec.add_argument("-b", "--bundle", default=".")
    spec.add_argument("--rootless", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
    sys.exit(main())


def dumps(value: object) -> str:
    return json.dumps(value, indent=2)


if __name__ == "__main__":
    run_main()
