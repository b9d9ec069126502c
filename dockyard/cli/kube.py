"""``dockyard kube``: play, read back (get) and take down Kubernetes YAML; generate it
from containers and compose projects; apply it to a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dockyard.engine.engine import Engine


@click.group("kube")
def kube_group() -> None:
    """Run Kubernetes YAML locally and read it back; turn containers and compose
    projects into Kubernetes YAML; apply it to a cluster."""


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
@click.argument("refs", nargs=-1, required=True, metavar="CONTAINER|PROJECT...")
@click.option("--pin", is_flag=True, help="Reference images by digest.")
@click.option("--kind", default="Deployment", show_default=True,
              type=click.Choice(["Deployment", "Pod", "Job", "DaemonSet"]),
              help="The workload each app becomes.")
@click.pass_obj
def kube_generate(engine: Engine, refs: tuple[str, ...], pin: bool, kind: str) -> None:
    """Print Kubernetes YAML for each CONTAINER, or each running compose PROJECT: a
    workload, a Service for its ports, ConfigMaps/Secrets, PVCs for named volumes."""
    from dockyard.errors import ContainerNotFound
    from dockyard.kube import generate

    apps: list[generate.App] = []
    for ref in refs:
        try:
            apps += generate.apps_of_containers(engine, [ref])
            continue
        except ContainerNotFound:
            members = generate.project_containers(engine, ref)
            if not members:
                raise
        apps += _project_apps(engine, ref, members)
    emit(engine, apps, kind, pin)


def _project_apps(engine: Engine, project: str, members: list[str]) -> list[Any]:
    """A running compose project's apps, from its compose files where they are still
    there (env files, configs, secrets, depends_on), else from its containers."""
    import os

    from dockyard.compose.labels import CONFIG_FILES, WORKING_DIR
    from dockyard.compose.loader import Options, load
    from dockyard.compose.lower import lower
    from dockyard.kube import generate

    labels = engine.containers.get(members[0]).spec.labels
    files = tuple(f for f in labels.get(CONFIG_FILES, "").split(",") if f)
    if files and all(Path(f).is_file() for f in files):
        options = Options(files, project, (), labels.get(WORKING_DIR))
        return generate.apps_from_compose(lower(load(options, Path.cwd(), os.environ)))
    return generate.apps_of_containers(engine, members)


def emit(engine: Engine, apps: list[Any], kind: str, pin: bool) -> None:
    """Print the YAML of ``apps`` (warnings on stderr)."""
    from dockyard.engine.supply import pinned_reference
    from dockyard.kube import generate

    image_of = (lambda image: pinned_reference(engine.images, image)) if pin else None
    documents, warnings = generate.documents(apps, kind=kind, image_of=image_of)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(generate.render(documents), nl=False)


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


@kube_group.command("apply")
@click.option("-f", "--filename", "files", multiple=True, required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="YAML to apply.")
@click.option("--context", default=None, help="The kubeconfig context (default: current).")
@click.option("--kubeconfig", default=None, help="Instead of $KUBECONFIG / ~/.kube/config.")
@click.option("-n", "--namespace", default=None, help="Instead of the context's namespace.")
@click.option("--push-to", default=None, metavar="REGISTRY",
              help="Push local images there first; reference them by digest.")
@click.pass_obj
def kube_apply(engine: Engine, files: tuple[Path, ...], context: str | None,
               kubeconfig: str | None, namespace: str | None, push_to: str | None) -> None:
    """Send the objects in the files to a cluster (server-side apply, field manager
    `dockyard`), after a dry run of them all: nothing is applied if any is refused."""
    from dockyard.errors import InvalidArgument
    from dockyard.kube import apply

    texts = []
    for path in files:
        try:
            texts.append((str(path), path.read_text()))
        except OSError as exc:
            raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from exc
    documents = apply.load_documents(texts)
    target = apply.connect(kubeconfig, context)
    if namespace:
        target = target._replace(namespace=namespace)
    if push_to:
        documents, pushed = apply.push_images(engine, documents, push_to)
        for line in pushed:
            click.echo(line)
    for line in apply.apply(target, documents):
        click.echo(line)


COMMANDS = [kube_group]
