"""The lazy command table of ``dockyard`` names every command its modules define."""

from __future__ import annotations

import importlib

from dockyard.cli.main import COMMAND_MODULES, cli

MODULES = ("images", "registry", "containers", "container_ops", "volumes", "networks",
           "system", "build", "serve", "compose", "kube", "supply")


def test_every_command_is_in_the_lazy_table() -> None:
    defined: dict[str, set[str]] = {}
    for name in MODULES:
        module = importlib.import_module(f"dockyard.cli.{name}")
        for command in module.COMMANDS:
            assert command.name is not None
            defined.setdefault(command.name, set()).add(name)
    assert {name: set(modules) for name, modules in COMMAND_MODULES.items()
            if name != "container"} == {k: v for k, v in defined.items() if k != "container"}
    assert "containers" in COMMAND_MODULES["container"]


def test_lazy_lookup_finds_commands() -> None:
    import click

    context = click.Context(cli)
    for name in COMMAND_MODULES:
        command = cli.get_command(context, name)
        assert command is not None and command.name == name
    assert cli.get_command(context, "no-such-command") is None
