"""Network commands: create, ls, inspect, rm, connect, disconnect, prune."""

from __future__ import annotations

import click

from dockyard.cli.render import go_time, label_method, labels_text, render, render_inspect
from dockyard.engine.engine import Engine


@click.group("network")
def network_group() -> None:
    """Manage networks."""


@network_group.command("create")
@click.option("-d", "--driver", default="bridge")
@click.option("--subnet", default=None, help="CIDR, e.g. 10.30.0.0/24 (default: from the pool)")
@click.option("--gateway", default=None)
@click.option("--internal", is_flag=True, help="No traffic in or out of the network.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE")
@click.argument("name")
@click.pass_obj
def network_create(engine: Engine, driver: str, subnet: str | None, gateway: str | None,
                   internal: bool, labels: tuple[str, ...], name: str) -> None:
    """Create a network (a bridge with its own subnet and embedded DNS)."""
    record = engine.networks.create(name, subnet=subnet, gateway=gateway, internal=internal,
                                    labels=dict(item.partition("=")[::2] for item in labels),
                                    driver=driver)
    click.echo(record.id)


@network_group.command("ls")
@click.option("-q", "--quiet", is_flag=True)
@click.option("--no-trunc", is_flag=True)
@click.option("--format", "fmt", default=None)
@click.pass_obj
def network_ls(engine: Engine, quiet: bool, no_trunc: bool, fmt: str | None) -> None:
    """List networks."""
    from dockyard.engine.networks import predefined_inspect

    rows = []
    records = {r.name: r for r in engine.networks.all()}
    if "bridge" not in records:
        records["bridge"] = engine.networks.default()
    for record in sorted(records.values(), key=lambda r: r.name):
        rows.append({"ID": record.id, "Name": record.name, "Driver": record.driver,
                     "Scope": "local", "Subnet": record.subnet, "IPv6": "false",
                     "Internal": "true" if record.internal else "false",
                     "Labels": labels_text(record.labels), "Label": label_method(record.labels),
                     "CreatedAt": go_time(record.created, fraction=True)})
    for name in ("host", "none"):
        doc = predefined_inspect(name)
        rows.append({"ID": doc["Id"], "Name": name, "Driver": doc["Driver"], "Scope": "local",
                     "Subnet": "", "IPv6": "false", "Internal": "false", "Labels": "",
                     "Label": label_method({}),
                     "CreatedAt": go_time(doc.get("Created", ""), fraction=True)})
    rows.sort(key=lambda r: r["Name"])
    if quiet:
        click.echo("\n".join(r["ID"] if no_trunc else r["ID"][:12] for r in rows))
        return
    if not no_trunc:
        for row in rows:
            row["ID"] = row["ID"][:12]
    click.echo(render(rows, ["ID", "Name", "Driver", "Scope", "Subnet"], fmt,
                      {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER",
                       "Scope": "SCOPE", "Subnet": "SUBNET"}))


@network_group.command("inspect")
@click.option("-f", "--format", "fmt", default=None)
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def network_inspect(engine: Engine, fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on networks (Docker's JSON)."""
    from dockyard.engine.networks import predefined_inspect

    container_names = {r.id: r.name for r in engine.containers.list(all_containers=True)}
    docs = []
    for name in names:
        if name in ("host", "none"):
            docs.append(predefined_inspect(name))
        else:
            docs.append(engine.networks.inspect(engine.networks.get(name), container_names))
    click.echo(render_inspect(docs, fmt))


@network_group.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def network_rm(engine: Engine, names: tuple[str, ...]) -> None:
    """Remove networks (refused while a container is on one)."""
    from dockyard.errors import DockyardError

    failed = None
    for name in names:
        try:
            click.echo(engine.networks.remove(name))
        except DockyardError as exc:
            failed = exc
            click.echo(f"Error: {exc}", err=True)
    if failed is not None:
        raise SystemExit(1)


@network_group.command("connect")
@click.option("--alias", "aliases", multiple=True)
@click.option("--ip", default=None)
@click.argument("network")
@click.argument("container")
@click.pass_obj
def network_connect(engine: Engine, aliases: tuple[str, ...], ip: str | None, network: str,
                    container: str) -> None:
    """Connect a container to a network (a running one gets the interface at once)."""
    from dockyard.engine.container_network import connect

    connect(engine.containers, engine.containers.get(container), network, aliases, ip)


@network_group.command("disconnect")
@click.option("-f", "--force", is_flag=True)
@click.argument("network")
@click.argument("container")
@click.pass_obj
def network_disconnect(engine: Engine, force: bool, network: str, container: str) -> None:
    """Disconnect a container from a network."""
    from dockyard.engine.container_network import disconnect

    disconnect(engine.containers, engine.containers.get(container), network)


@network_group.command("prune")
@click.option("-f", "--force", is_flag=True)
@click.pass_obj
def network_prune(engine: Engine, force: bool) -> None:
    """Remove every network no container is on (and the default bridge when unused)."""
    removed = engine.networks.prune()
    if removed:
        click.echo("Deleted Networks:\n" + "\n".join(removed))


COMMANDS = [network_group]
