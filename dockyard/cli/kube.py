"""``dockyard kube``: play and take down Kubernetes YAML, generate it from containers."""

from __future__ import annotations

from pathlib import Path

import click

from dockyard.engine.engine import Engine


@click.group("kube")
def kube_group() -> None:
    """Run Kubernetes YAML locally; turn containers into Kubernetes YAML."""


@kube_group.command("play")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("-d", "--detach", is_flag=True,
              help="Leave the reconcile loop running in the background.")
@click.pass_obj
def kube_play(engine: Engine, files: tuple[Path, ...], detach: bool) -> None:
    """Create the objects in FILE… (Pod, Deployment, ReplicaSet, DaemonSet, Job,
    Service, ConfigMap, Secret, PersistentVolumeClaim, Namespace) and keep them at
    their desired state: in the foreground until interrupted (then they are
    removed), or with --detach in the background.  Playing the files again while
    they play hands the controller the new state: a changed template rolls out."""
    from dockyard.kube import controller, play
    from dockyard.kube.load import load_files

    objects = load_files(list(files))
    updating = bool(play.owned(engine, {o.owner for o in objects}))
    for line in play.apply(engine, objects):
        click.echo(line)
    if updating:
        return
    if detach:
        try:
            pid = controller.spawn(engine, objects)
        except BaseException:
            play.down(engine, objects)
            raise
        click.echo(f"controller {pid}")
        return
    click.echo("reconciling; interrupt to stop and remove", err=True)
    controller.run_foreground(engine, objects)


@kube_group.command("down")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def kube_down(engine: Engine, files: tuple[Path, ...]) -> None:
    """Remove everything `kube play` made for the objects in FILE…"""
    from dockyard.kube import play
    from dockyard.kube.load import load_files

    for line in play.down(engine, load_files(list(files))):
        click.echo(f"removed {line}")


@kube_group.command("generate")
@click.argument("containers", nargs=-1, required=True)
@click.option("--pin", is_flag=True, help="Reference images by digest.")
@click.pass_obj
def kube_generate(engine: Engine, containers: tuple[str, ...], pin: bool) -> None:
    """Print a Deployment (and a Service for published ports) for each CONTAINER."""
    from dockyard.kube.generate import generate

    click.echo(generate(engine, list(containers), pin=pin), nl=False)


@kube_group.command("get")
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-o", "--output", type=click.Choice(["yaml", "json", "name"]),
              help="Kubernetes-shaped objects with their status (a List without NAME).")
@click.pass_obj
def kube_get(engine: Engine, kind: str, name: str | None, namespace: str,
             output: str | None) -> None:
    """Show what is playing: KIND is deploy, rs, ds, job, pod, svc, ep, cm, secret,
    pvc or ns (kubectl's names), with the status read from the containers."""
    from dockyard.kube import get

    objects = get.get(engine, kind, name, namespace)
    if output in ("yaml", "json"):
        click.echo(get.render(objects, name is not None, output), nl=False)
        return
    kind_name = get.kind_of(kind)
    if output == "name":
        for doc in objects:
            click.echo(f"{kind_name.lower()}/{doc['metadata']['name']}")
        return
    if not objects:
        click.echo(f"No resources found in {namespace} namespace.", err=True)
        return
    rows = [get.HEADERS.get(kind_name, ["NAME"]), *get.table(kind_name, objects)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


COMMANDS = [kube_group]
