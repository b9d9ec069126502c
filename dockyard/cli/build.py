"""``dockyard build`` (click's reading: ``--help``, errors; the body and its flags are
``cli.build_cmds``'s, which the fast path runs without click) and ``dockyard builder
prune``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dockyard.cli.build_cmds import BUILD_OPTIONS, KEY_VALUE_FLAGS, bad_key_value, build
from dockyard.cli.flagtable import click_options

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine


@click.command("build")
@click.argument("context")
@click_options(BUILD_OPTIONS)
@click.pass_obj
def build_cmd(engine: Engine, /, context: str, **options: Any) -> None:
    """Build an image from a Dockerfile and a context (a directory, or - for stdin)."""
    if context == "-" and options["dockerfile"] == "-":
        raise click.UsageError("the context and the Dockerfile cannot both come from stdin")
    for dest, what in KEY_VALUE_FLAGS.items():
        item = bad_key_value(options[dest])
        if item is not None:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=what)
    build(engine, context, **options)


@click.group("builder")
def builder_group() -> None:
    """Manage the build cache."""


@builder_group.command("prune")
@click.option("-a", "--all", "all_entries", is_flag=True, help="Accepted for Docker parity.")
@click.option("-f", "--force", is_flag=True, help="Do not ask (dockyard never asks).")
@click.pass_obj
def builder_prune(engine: Engine, all_entries: bool, force: bool) -> None:
    """Forget every build cache entry and free the layers only it kept."""
    from dockyard.build.cache import BuildCache
    from dockyard.fs.tree import remove_tree

    removed = BuildCache(engine.db).prune()
    remove_tree(engine.layout.root / "build-cache", ignore_errors=True)
    freed = engine.images.collect_garbage()
    click.echo(f"Deleted build cache objects: {removed}")
    click.echo(f"Total reclaimed space: {freed / 1e6:.1f}MB")


COMMANDS = [build_cmd, builder_group]
