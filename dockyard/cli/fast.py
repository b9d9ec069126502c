"""The fast path: hot commands run without click.

``run``, ``exec``, ``rm``, ``ps``, ``images`` and ``inspect`` are what users and scripts
type most, and click alone costs ~16 ms of imports: more than ``ps``'s own work; so are
``compose up``/``ps``/``down`` (a no-op ``up`` is mostly start-up), ``build`` (a
fully cached one is too) and ``pull`` (its start-up against skopeo's).  ``dispatch`` reads
the global flags and a hot command's flags (a group's, then its subcommand's) from the
same ``flagtable`` rows the click commands are built from, and calls the same body
(``container_cmds``, ``image_cmds``, ``build_cmds``, ``compose_cmds``, ``registry_cmds``).
Anything it is not sure to read exactly as click would — another command, an
unknown or malformed flag, ``--help``, a missing argument — goes to click
(``dispatch`` answers None), which parses it and words its errors.
"""

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from dockyard.cli import global_flags
from dockyard.cli.flagtable import NotFast, Opt, parse


class FastCommand(NamedTuple):
    options: Callable[[], Sequence[Opt]]
    body: Callable[..., object] | None  # (engine, *positionals, **options); None: a group
    positionals: tuple[int, int | None]  # how many: at least, at most (None: any)
    interspersed: bool = True
    # a group (``compose``): its subcommands; the body of one gets the group's options
    # as its second argument
    subcommands: "Callable[[], Mapping[str, FastCommand]] | None" = None
    # (positionals, options) -> False for what the click command refuses itself
    fits: Callable[[list[str], dict[str, Any]], bool] | None = None


def _run_options() -> Sequence[Opt]:
    from dockyard.cli.container_flags import RUN_OPTIONS

    return RUN_OPTIONS


def _run(engine: Any, image: str, *command: str, **options: Any) -> object:
    from dockyard.cli.container_cmds import run

    return run(engine, image, tuple(command), **options)


def _ps_options() -> Sequence[Opt]:
    from dockyard.cli.container_cmds import PS_OPTIONS

    return PS_OPTIONS


def _ps(engine: Any, **options: Any) -> object:
    from dockyard.cli.container_cmds import ps

    ps(engine, **options)
    return 0


def _images_options() -> Sequence[Opt]:
    from dockyard.cli.image_cmds import IMAGES_OPTIONS

    return IMAGES_OPTIONS


def _images(engine: Any, *repository: str, **options: Any) -> object:
    from dockyard.cli.image_cmds import images

    images(engine, *repository, **options)
    return 0


def _inspect_options() -> Sequence[Opt]:
    from dockyard.cli.image_cmds import INSPECT_OPTIONS

    return INSPECT_OPTIONS


def _inspect(engine: Any, *names: str, **options: Any) -> object:
    from dockyard.cli.image_cmds import inspect

    inspect(engine, *names, **options)
    return 0


def _exec_options() -> Sequence[Opt]:
    from dockyard.cli.container_cmds import EXEC_OPTIONS

    return EXEC_OPTIONS


def _exec(engine: Any, container: str, *command: str, **options: Any) -> object:
    from dockyard.cli.container_cmds import exec_

    return exec_(engine, container, *command, **options)


def _build_options() -> Sequence[Opt]:
    from dockyard.cli.build_cmds import BUILD_OPTIONS

    return BUILD_OPTIONS


def _build(engine: Any, context: str, **options: Any) -> object:
    from dockyard.cli.build_cmds import build

    return build(engine, context, **options)


def _build_fits(positionals: list[str], options: dict[str, Any]) -> bool:
    from dockyard.cli.build_cmds import fits

    return fits(positionals, options)


def _pull_options() -> Sequence[Opt]:
    from dockyard.cli.registry_cmds import PULL_OPTIONS

    return PULL_OPTIONS


def _pull(engine: Any, ref: str, **options: Any) -> object:
    from dockyard.cli.registry_cmds import pull

    pull(engine, ref, **options)
    return 0


def _compose_options() -> Sequence[Opt]:
    from dockyard.cli.compose_cmds import COMPOSE_OPTIONS

    return COMPOSE_OPTIONS


def _compose_body(name: str) -> Callable[..., object]:
    def body(engine: Any, group: dict[str, Any], *services: str, **options: Any) -> object:
        from dockyard.cli import compose_cmds

        run: Callable[..., object] = getattr(compose_cmds, name)
        return run(compose_cmds.ComposeContext(engine, **group), *services, **options)

    return body


def _compose_table(name: str) -> Callable[[], Sequence[Opt]]:
    def table() -> Sequence[Opt]:
        from dockyard.cli import compose_cmds

        rows: Sequence[Opt] = getattr(compose_cmds, f"{name.upper()}_OPTIONS")
        return rows

    return table


def _compose_commands() -> Mapping[str, FastCommand]:
    return {"up": FastCommand(_compose_table("up"), _compose_body("up"), (0, None)),
            "ps": FastCommand(_compose_table("ps"), _compose_body("ps"), (0, None)),
            "down": FastCommand(_compose_table("down"), _compose_body("down"), (0, 0))}


def _container_table(name: str) -> Callable[[], Sequence[Opt]]:
    def table() -> Sequence[Opt]:
        from dockyard.cli import container_cmds

        rows: Sequence[Opt] = getattr(container_cmds, f"{name.upper()}_OPTIONS")
        return rows

    return table


def _container_body(name: str) -> Callable[..., object]:
    def body(engine: Any, *containers: str, **options: Any) -> object:
        from dockyard.cli import container_cmds

        run: Callable[..., object] = getattr(container_cmds, name)
        return run(engine, *containers, **options)

    return body


COMMANDS: dict[str, FastCommand] = {
    "run": FastCommand(_run_options, _run, (1, None), interspersed=False),
    "ps": FastCommand(_ps_options, _ps, (0, 0)),
    "images": FastCommand(_images_options, _images, (0, 1)),
    "inspect": FastCommand(_inspect_options, _inspect, (1, None)),
    "exec": FastCommand(_exec_options, _exec, (2, None), interspersed=False),
    "rm": FastCommand(_container_table("rm"), _container_body("rm"), (1, None)),
    "start": FastCommand(_container_table("start"), _container_body("start"), (1, None)),
    "stop": FastCommand(_container_table("stop"), _container_body("stop"), (1, None)),
    "restart": FastCommand(_container_table("stop"), _container_body("restart"), (1, None)),
    "kill": FastCommand(_container_table("kill"), _container_body("kill"), (1, None)),
    "build": FastCommand(_build_options, _build, (1, 1), fits=_build_fits),
    "pull": FastCommand(_pull_options, _pull, (1, 1)),
    "compose": FastCommand(_compose_options, None, (1, None), interspersed=False,
                           subcommands=_compose_commands),
}


def dispatch(argv: Sequence[str]) -> int | None:
    """Run a hot command without click: its exit code, or None to let click run it."""
    found = global_flags.read(argv)
    if found is None:
        return None
    root, insecure, i = found.root, found.insecure, found.end
    if i >= len(argv) or argv[i] not in COMMANDS:
        return None
    name = argv[i]
    found_command = read_flags(argv[i:])
    if found_command is None:
        return None
    body, positionals, options = found_command
    if root is None:
        root = os.environ.get("DOCKYARD_ROOT") or None
    if not insecure and os.environ.get("DOCKYARD_INSECURE_REGISTRIES"):
        insecure = os.environ["DOCKYARD_INSECURE_REGISTRIES"].split()
    from pathlib import Path

    from dockyard.cli.errors import guarded
    from dockyard.engine.engine import Engine
    from dockyard.store.layout import Layout

    engine = Engine(Layout.for_root(root), insecure_registries=frozenset(insecure),
                    policy=Path(found.policy) if found.policy else None,
                    registries_d=Path(found.registries_d) if found.registries_d else None)
    return guarded(lambda: body(engine, *positionals, **options), run=name == "run")


def read_flags(argv: Sequence[str]
               ) -> tuple[Callable[..., object], list[Any], dict[str, Any]] | None:
    """A hot command's body, positional and keyword arguments as ``dispatch`` reads
    them from ``argv`` (the command's name first); None when not the fast path's."""
    command = COMMANDS.get(argv[0]) if argv else None
    return _parsed(command, argv[1:]) if command is not None else None


def _parsed(command: FastCommand, argv: Sequence[str]
            ) -> tuple[Callable[..., object], list[Any], dict[str, Any]] | None:
    """The body to call with the engine, its positional and keyword arguments; None
    when the arguments are not for the fast path."""
    try:
        options, positionals = parse(command.options(), argv,
                                     interspersed=command.interspersed)
    except NotFast:
        return None
    least, most = command.positionals
    if len(positionals) < least or (most is not None and len(positionals) > most):
        return None
    if command.fits is not None and not command.fits(positionals, options):
        return None
    if command.subcommands is None:
        assert command.body is not None  # a command, not a group
        return command.body, positionals, options
    sub = command.subcommands().get(positionals[0])
    found = _parsed(sub, positionals[1:]) if sub is not None else None
    if found is None:
        return None
    body, sub_positionals, sub_options = found
    return body, [options, *sub_positionals], sub_options
