"""Network commands (the bridge network for now): ls, inspect, prune."""

from __future__ import annotations

import json

import click

from dockyard.cli.render import render
from dockyard.engine.engine import Engine


@click.group("network")
def network_group() -> None:
    """Manage networks."""


@network_group.command("ls")
@click.pass_obj
def network_ls(engine: Engine) -> None:
    """List networks."""
    name, subnet = engine.containers.bridge()
    rows = [{"Name": "bridge", "Driver": "bridge", "Detail": f"{name} {subnet}"},
            {"Name": "host", "Driver": "host", "Detail": ""},
            {"Name": "none", "Driver": "null", "Detail": ""}]
    click.echo(render(rows, ["Name", "Driver", "Detail"], None,
                      {"Name": "NAME", "Driver": "DRIVER", "Detail": "BRIDGE / SUBNET"}))


@network_group.command("inspect")
@click.argument("name")
@click.pass_obj
def network_inspect(engine: Engine, name: str) -> None:
    """Display the bridge network."""
    from dockyard.errors import NotFound

    if name != "bridge":
        raise NotFound(f"network {name} not found")
    bridge, subnet = engine.containers.bridge()
    users = [r.name for r in engine.containers.list(all_containers=True)
             if r.spec.network_mode == "bridge"]
    click.echo(json.dumps([{"Name": "bridge", "Driver": "bridge",
                            "Options": {"com.docker.network.bridge.name": bridge},
                            "IPAM": {"Config": [{"Subnet": subnet}]},
                            "Containers": users}], indent=4))


@network_group.command("prune")
@click.option("-f", "--force", is_flag=True)
@click.pass_obj
def network_prune(engine: Engine, force: bool) -> None:
    """Remove the bridge device when no running container uses it."""
    if engine.containers.network_prune():
        click.echo(f"Deleted Networks:\n{engine.containers.bridge()[0]}")


COMMANDS = [network_group]
