"""Flags defined once, read by click and by the fast path (``cli.fast``).

A hot command (``run``, ``ps``…) lists its flags as ``Opt`` rows.  ``click_options``
turns the rows into the click options the full CLI parses with (help, errors,
completion); ``parse`` reads the same rows without importing click, for the fast
path that skips click's ~16 ms of imports.  ``parse`` takes only what it is sure
to read exactly as click would — known flags, well-formed values, a known number of
positionals — and answers ``NotFast`` for anything else (an unknown flag, ``--help``,
a bad integer), so click parses it and gives its own message.
"""


from collections.abc import Callable, Sequence
from typing import Any, NamedTuple


class Opt(NamedTuple):
    names: tuple[str, ...]  # "-e", "--env" (as the docker CLI spells them)
    dest: str  # the keyword the command's body receives
    kind: str = "value"  # "flag", "value" (the last one given wins) or "multi"
    default: Any = None
    type: Callable[[str], Any] | None = None  # int: click's INT; None: the text
    help: str | None = None
    choices: tuple[str, ...] | None = None  # the values allowed (click's Choice)
    metavar: str | None = None  # how ``--help`` names the value


def opt(*names: str, dest: str | None = None, kind: str = "value", default: Any = None,
        type: Callable[[str], Any] | None = None, help: str | None = None,  # noqa: A002
        choices: tuple[str, ...] | None = None, metavar: str | None = None) -> Opt:
    """A row; ``dest`` as click derives it (the first long name, dashes as
    underscores) unless given."""
    if dest is None:
        long_names = [n for n in names if n.startswith("--")]
        dest = (long_names or list(names))[0].lstrip("-").replace("-", "_")
    return Opt(tuple(names), dest, kind, default, type, help, choices, metavar)


def click_options(table: Sequence[Opt]) -> Callable[[Any], Any]:
    """A decorator adding the rows as click options (the full CLI's parser)."""
    import click

    def decorate(func: Any) -> Any:
        for row in reversed(table):
            extra: dict[str, Any] = {"help": row.help}
            if row.kind == "flag":
                extra["is_flag"] = True
            elif row.kind == "multi":
                extra["multiple"] = True
            else:
                extra["default"] = row.default
            if row.type in (int, float):
                extra["type"] = row.type
            if row.choices is not None:
                extra["type"] = click.Choice(list(row.choices))
            if row.metavar is not None:
                extra["metavar"] = row.metavar
            func = click.option(*row.names, row.dest, **extra)(func)
        return func

    return decorate


class NotFast(Exception):
    """The fast path does not read these arguments: click does."""


def defaults(table: Sequence[Opt]) -> dict[str, Any]:
    """What click passes for flags not given: False, (), or the row's default."""
    return {row.dest: False if row.kind == "flag" else () if row.kind == "multi"
            else row.default for row in table}


def parse(table: Sequence[Opt], argv: Sequence[str], *,
          interspersed: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Click's reading of ``argv`` for a command with these options: the values by
    ``dest`` and the positional arguments.  With ``interspersed`` False (``run``),
    options end at the first positional (the image), as click's
    ``allow_interspersed_args=False``."""
    by_name = {name: row for row in table for name in row.names}
    values = defaults(table)
    multi: dict[str, list[Any]] = {}
    positionals: list[str] = []
    args = list(argv)
    i = 0

    def take(row: Opt, text: str) -> None:
        if row.choices is not None and text not in row.choices:
            raise NotFast(text)  # click: "is not one of"
        if row.type is not None:
            try:
                value = row.type(text)
            except ValueError:
                raise NotFast(text) from None
        else:
            value = text
        if row.kind == "multi":
            multi.setdefault(row.dest, []).append(value)
        else:
            values[row.dest] = value

    def next_value(row: Opt) -> str:
        nonlocal i
        if i + 1 >= len(args):
            raise NotFast(row.names[0])  # click: "requires an argument"
        i += 1
        return args[i]

    while i < len(args):
        arg = args[i]
        if arg == "--":
            positionals += args[i + 1:]
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, attached = arg.partition("=")
            row = by_name.get(name)
            if row is None:
                raise NotFast(name)
            if row.kind == "flag":
                if eq:
                    raise NotFast(arg)
                values[row.dest] = True
            else:
                take(row, attached if eq else next_value(row))
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                row = by_name.get("-" + arg[j])
                if row is None:
                    raise NotFast(arg)
                if row.kind == "flag":
                    values[row.dest] = True
                    j += 1
                    continue
                rest = arg[j + 1:]
                take(row, rest if rest else next_value(row))
                break
        else:
            positionals.append(arg)
            if not interspersed:
                positionals += args[i + 1:]
                break
        i += 1
    for dest, items in multi.items():
        values[dest] = tuple(items)
    return values, positionals
