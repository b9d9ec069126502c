"""``dockyard-runtime``: runc's command line over the runtime library.

The standard library only, on purpose: this binary sits on every container start
path, and containerd/dockerd invoke it several times per container, so its cost is
measured (bench/runtime_start.py).  The flags are declared once, in tables: a small
parser reads them for the subcommands of a container's life, argparse (built from the
same tables) for the rest, for help, and for every error message.
Errors print one line (and a JSON line to ``--log`` for containerd) and exit 1.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from dockyard import jsonlite, trace
from dockyard.errors import DockyardError
from dockyard.runtime import log
from dockyard.stdlite import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from typing import Any

DEFAULT_ROOT = "/run/dockyard-runtime"


# The command line, declared once: argparse is built from these tables, and so is the
# fast parser the hot subcommands take (argparse's import, setup and gettext lookups
# cost ~5 ms of each call; containerd calls this binary several times per container).
# A flag: (names, kind, default, choices); kinds: bool, str, int, append, append_int.
Flag = tuple[tuple[str, ...], str, object, tuple[str, ...]]

GLOBAL_FLAGS: tuple[Flag, ...] = (
    (("--root",), "str", None, ()),  # default: $DOCKYARD_RUNTIME_ROOT or DEFAULT_ROOT
    (("--log",), "str", None, ()),
    (("--log-format",), "str", "text", ("text", "json")),
    (("--debug",), "bool", False, ()),
    (("--systemd-cgroup",), "bool", False, ()),
    (("--rootless",), "str", "auto", ()),
    (("--criu",), "str", None, ()),
    (("-v", "--version"), "bool", False, ()),
)

_CREATE: tuple[Flag, ...] = (
    (("-b", "--bundle"), "str", ".", ()),
    (("--console-socket",), "str", None, ()),
    (("--pid-file",), "str", None, ()),
    (("--no-pivot",), "bool", False, ()),
    (("--no-new-keyring",), "bool", False, ()),
    (("--preserve-fds",), "int", 0, ()),
)
_FORMAT: Flag = (("-f", "--format"), "str", "table", ("table", "json"))

# A subcommand: (help, positionals, flags).  A positional: (name, nargs) with nargs
# "1" (required), "?" (optional: its default follows), "*" or "..." (the rest).
Positional = tuple[str, str, object]
Command = tuple[str, tuple[Positional, ...], tuple[Flag, ...]]
_ID: Positional = ("id", "1", None)

COMMANDS: dict[str, Command] = {
    "create": ("create a container", (_ID,), _CREATE),
    "run": ("create and start a container", (_ID,), (
        *_CREATE, (("-d", "--detach"), "bool", False, ()), (("--keep",), "bool", False, ()))),
    "start": ("start a created container", (_ID,), ()),
    "state": ("print the state of a container", (_ID,), ()),
    "pause": ("freeze every process of a container", (_ID,), ()),
    "resume": ("thaw a paused container", (_ID,), ()),
    "kill": ("send a signal to the container's init", (_ID, ("signal", "?", "SIGTERM")),
             ((("-a", "--all"), "bool", False, ()),)),
    "delete": ("delete a stopped container", (_ID,), ((("-f", "--force"), "bool", False, ()),)),
    "ps": ("list the processes of a container", (_ID, ("ps_args", "*", None)), (_FORMAT,)),
    "list": ("list containers", (), (_FORMAT, (("-q", "--quiet"), "bool", False, ()))),
    "exec": ("run a process in a running container", (_ID, ("command", "...", None)), (
        (("-p", "--process"), "str", None, ()),
        (("--console-socket",), "str", None, ()),
        (("--cwd",), "str", None, ()),
        (("-e", "--env"), "append", None, ()),
        (("-t", "--tty"), "bool", False, ()),
        (("-u", "--user"), "str", None, ()),
        (("-g", "--additional-gids"), "append_int", None, ()),
        (("-c", "--cap"), "append", None, ()),
        (("--no-new-privs",), "bool", False, ()),
        (("-d", "--detach"), "bool", False, ()),
        (("--pid-file",), "str", None, ()),
        (("--preserve-fds",), "int", 0, ()),
        (("--process-label",), "str", None, ()),
        (("--apparmor",), "str", None, ()),
        (("--ignore-paused",), "bool", False, ()))),
    "update": ("update a container's resource limits", (_ID,), (
        (("-r", "--resources"), "str", None, ()),
        (("-m", "--memory"), "int", None, ()),
        (("--memory-swap",), "int", None, ()),
        (("--memory-reservation",), "int", None, ()),
        (("--pids-limit",), "int", None, ()),
        (("--cpu-shares",), "int", None, ()),
        (("--cpu-quota",), "int", None, ()),
        (("--cpu-period",), "int", None, ()),
        (("--blkio-weight",), "int", None, ()))),
    "features": ("print the features this runtime supports", (), ()),
    "spec": ("write a default config.json", (), (
        (("-b", "--bundle"), "str", ".", ()), (("--rootless",), "bool", False, ()))),
}

# what the fast parser takes: the subcommands of a container's life, without a
# positional that swallows the rest (exec, ps: argparse's REMAINDER rules)
FAST_COMMANDS = frozenset({"create", "run", "start", "state", "pause", "resume", "kill",
                           "delete"})


def _dest(names: tuple[str, ...]) -> str:
    return names[-1].lstrip("-").replace("-", "_")


def _default_root() -> str:
    return os.environ.get("DOCKYARD_RUNTIME_ROOT", DEFAULT_ROOT)


def _initial(flags: tuple[Flag, ...]) -> dict[str, object]:
    return {_dest(names): ([] if kind.startswith("append") else default)
            for names, kind, default, _choices in flags}


def fast_parse(argv: list[str]) -> SimpleNamespace | None:
    """argv as argparse would parse it, for a hot subcommand with plain flags; None for
    anything else (help, an unknown or malformed flag, a bad value, other commands):
    argparse then parses it and says what is wrong."""
    values = _initial(GLOBAL_FLAGS)
    values["root"] = _default_root()
    by_name = {name: flag for flag in GLOBAL_FLAGS for name in flag[0]}
    positionals: list[str] = []
    command: Command | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg.startswith("-") and arg != "-":
            name, eq, inline = arg.partition("=")
            flag = by_name.get(name)
            if flag is None or (eq and flag[1] == "bool"):
                return None
            names, kind, _default, choices = flag
            if kind == "bool":
                values[_dest(names)] = True
                continue
            if not eq:
                if i >= len(argv) or argv[i].startswith("-"):
                    return None
                inline = argv[i]
                i += 1
            if choices and inline not in choices:
                return None
            if kind in ("int", "append_int"):
                try:
                    value: object = int(inline)
                except ValueError:
                    return None
            else:
                value = inline
            if kind.startswith("append"):
                listed = values[_dest(names)]
                assert isinstance(listed, list)
                listed.append(value)
            else:
                values[_dest(names)] = value
        elif command is None:
            if arg not in FAST_COMMANDS:
                return None
            command = COMMANDS[arg]
            values["subcommand"] = arg
            values.update(_initial(command[2]))
            by_name = {name: flag for flag in command[2] for name in flag[0]}
        else:
            positionals.append(arg)
    if command is None:
        return None
    wanted = command[1]
    required = sum(1 for _name, nargs, _default in wanted if nargs == "1")
    if not required <= len(positionals) <= len(wanted):
        return None
    for index, (name, _nargs, default) in enumerate(wanted):
        values[name] = positionals[index] if index < len(positionals) else default
    return SimpleNamespace(**values)


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argparse parser; with ``only``, just that subcommand's (argparse setup is
    ~1 ms each subcommand)."""
    import argparse

    def add(parser: argparse.ArgumentParser, flags: tuple[Flag, ...]) -> None:
        for names, kind, default, choices in flags:
            options: dict[str, Any] = {"default": default}
            if kind == "bool":
                options = {"action": "store_true"}
            elif kind == "int":
                options["type"] = int
            elif kind.startswith("append"):
                options = {"action": "append", "default": [],
                           **({"type": int} if kind == "append_int" else {})}
            if choices:
                options["choices"] = list(choices)
            parser.add_argument(*names, **options)

    p = argparse.ArgumentParser(prog="dockyard-runtime",
                                description="An OCI runtime with runc's command line.")
    add(p, GLOBAL_FLAGS)
    p.set_defaults(root=_default_root())
    sub = p.add_subparsers(dest="subcommand")
    for name, (help_text, positionals, flags) in COMMANDS.items():
        if only is not None and name != only:
            continue
        cmd = sub.add_parser(name, help=help_text)
        for dest, nargs, default in positionals:
            if nargs == "1":
                cmd.add_argument(dest)
            elif nargs == "...":
                cmd.add_argument(dest, nargs=argparse.REMAINDER)
            else:
                cmd.add_argument(dest, nargs=nargs, default=default)
        add(cmd, flags)
    return p


def parse(argv: list[str]) -> SimpleNamespace:
    """The fast parser where it can, else argparse (which exits 2 on bad input)."""
    fast = fast_parse(argv)
    if fast is not None:
        return fast
    wanted = _subcommand_in(argv)
    return SimpleNamespace(**vars(_parser(wanted if wanted in COMMANDS else None)
                                  .parse_args(argv)))


def _subcommand_in(argv: list[str]) -> str | None:
    """The subcommand named in ``argv``, skipping global options and their values."""
    takes_value = {name for names, kind, _d, _c in GLOBAL_FLAGS if kind != "bool"
                   for name in names}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in takes_value:
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return arg
    return None


def main(argv: list[str] | None = None) -> int:
    trace.begin("runtime")
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    finally:
        trace.report()


def _main(argv: list[str]) -> int:
    if "create" in argv or "run" in argv:
        from dockyard.runtime.linux.cgroup_peek import warm_attach_lock

        warm_attach_lock()  # the init's cgroup move, ~15 ms from now, is then quick
    args = parse(argv)
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

        return commands.dispatch(args, args.root)
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
    return jsonlite.dumps(value, indent=2)


if __name__ == "__main__":
    run_main()
