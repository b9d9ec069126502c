"""Image commands: import, images, tag, rmi, image inspect/history/prune, save, load."""

from __future__ import annotations

import json
import sys
from typing import IO, Any

import click

from dockyard.cli import image_cmds
from dockyard.cli.flagtable import click_options
from dockyard.cli.image_cmds import IMAGES_OPTIONS, INSPECT_OPTIONS
from dockyard.cli.render import (
    go_rfc3339,
    human_ago,
    human_size,
    render,
    render_inspect,
)
from dockyard.cli.trust import TRUST_COMMANDS
from dockyard.engine.engine import Engine
from dockyard.errors import InvalidArgument, NotFound, PermissionDenied


def _engine() -> Engine:
    engine = click.get_current_context().find_object(Engine)
    assert engine is not None
    return engine


def _open_source(source: str) -> IO[bytes]:
    if source == "-":
        return sys.stdin.buffer
    if source.startswith(("http://", "https://")):
        import httpx

        response = httpx.get(source, follow_redirects=True, timeout=60)
        response.raise_for_status()
        import io

        return io.BytesIO(response.content)
    try:
        return open(source, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise NotFound(f"open {source}: no such file or directory") from None
    except IsADirectoryError:
        raise InvalidArgument(f"read {source}: is a directory") from None
    except PermissionError:
        raise PermissionDenied(f"open {source}: permission denied") from None


@click.command("import")
@click.argument("source")
@click.argument("ref", required=False)
@click.option("-m", "--message", default="", help="Commit message for the imported image.")
@click.option("-c", "--change", multiple=True, help="Dockerfile instruction (CMD, ENV, …).")
def import_cmd(source: str, ref: str | None, message: str, change: tuple[str, ...]) -> None:
    """Import a root filesystem tarball (FILE, URL or -) as an image."""
    changes = _parse_changes(change)
    with _open_source(source) as stream:
        image_id = _engine().images.import_rootfs(stream, ref, message, changes)
    click.echo(image_id)


def _exec_form(value: str) -> list[str] | None:
    """A JSON array of strings (a Dockerfile's exec form); None for anything else,
    which is shell form, as the Dockerfile parser reads ``CMD [oops``."""
    if not value.startswith("["):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
        return parsed
    return None


def _parse_changes(changes: tuple[str, ...]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for change in changes:
        keyword, _, value = change.strip().partition(" ")
        keyword = keyword.upper()
        value = value.strip()
        parsed = _exec_form(value) or ["/bin/sh", "-c", value]
        if keyword in ("CMD", "ENTRYPOINT"):
            config["Cmd" if keyword == "CMD" else "Entrypoint"] = parsed
        elif keyword == "ENV":
            key, _, val = value.partition("=")
            config.setdefault("Env", []).append(f"{key}={val}")
        elif keyword == "WORKDIR":
            config["WorkingDir"] = value
        elif keyword == "USER":
            config["User"] = value
        elif keyword == "EXPOSE":
            config.setdefault("ExposedPorts", {})[value if "/" in value else f"{value}/tcp"] = {}
        elif keyword == "LABEL":
            key, _, val = value.partition("=")
            config.setdefault("Labels", {})[key] = val.strip('"')
        else:
            from dockyard.errors import InvalidArgument

            raise InvalidArgument(f"--change: unsupported instruction {keyword!r}")
    return config


@click.command("images")
@click.argument("repository", required=False)
@click_options(IMAGES_OPTIONS)
def images_cmd(repository: str | None, **o: Any) -> None:
    """List images."""
    image_cmds.images(_engine(), repository, **o)


@click.command("tag")
@click.argument("source")
@click.argument("target")
def tag_cmd(source: str, target: str) -> None:
    """Create a tag TARGET that refers to SOURCE."""
    _engine().images.tag(source, target)


@click.command("rmi")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
def rmi_cmd(names: tuple[str, ...], force: bool) -> None:
    """Remove one or more images (each that can be, as Docker: the rest are named; with
    ``-f`` one that is not there is named but fails nothing)."""
    from dockyard.errors import DockyardError, NotFound

    failed = False
    for name in names:
        try:
            for event in _engine().images.remove(name, force=force):
                click.echo(event)
        except DockyardError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            failed = failed or not (force and isinstance(exc, NotFound))
    if failed:
        raise click.exceptions.Exit(1)


@click.command("history")
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True)
@click.option("--no-trunc", is_flag=True)
@click.option("--format", "fmt", default=None)
def history_cmd(name: str, quiet: bool, no_trunc: bool, fmt: str | None) -> None:
    """Show the history of an image."""
    rows = _engine().images.history(name)
    if quiet:
        click.echo("\n".join(r["Id"] for r in rows))
        return
    table = [{"ID": r["Id"] if no_trunc or r["Id"] == "<missing>" else r["Id"].split(":")[1][:12],
              "CreatedSince": human_ago(r["Created"]), "CreatedAt": go_rfc3339(r["Created"]),
              "CreatedBy": _one_line(r["CreatedBy"], no_trunc),
              "Size": human_size(r["Size"]), "Comment": r["Comment"]} for r in rows]
    click.echo(render(table, ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"], fmt,
                      {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedBy": "CREATED BY",
                       "Size": "SIZE", "Comment": "COMMENT"}))


def _one_line(text: str, no_trunc: bool) -> str:
    """A heredoc RUN's script on one table line (newlines shown as ``\\n``)."""
    flat = text.replace("\n", "\\n")
    return flat if no_trunc or len(flat) <= 45 else flat[:44] + "…"


@click.command("save")
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", default=None, help="Write to a file instead of stdout.")
@click.option("--format", "fmt", default="docker",
              type=click.Choice(["docker", "oci-archive"]), help="Archive format.")
def save_cmd(names: tuple[str, ...], output: str | None, fmt: str) -> None:
    """Save images to a tar archive (docker-archive by default)."""
    if output is None and sys.stdout.isatty():
        from dockyard.errors import InvalidArgument

        raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or "
                              "redirect")
    if output is None:
        _engine().images.save(list(names), sys.stdout.buffer, fmt)
        return
    from pathlib import Path

    from dockyard.store.atomic import atomic_writer

    with atomic_writer(Path(output)) as out:
        _engine().images.save(list(names), out, fmt)


@click.command("load")
@click.option("-i", "--input", "source", default="-", help="Read from a file, not stdin.")
@click.option("-q", "--quiet", is_flag=True)
def load_cmd(source: str, quiet: bool) -> None:
    """Load images from a docker-archive or OCI archive."""
    with _open_source(source) as stream:
        names = _engine().images.load(stream)
    if not quiet:
        for name in names:
            prefix = "Loaded image ID: " if name.startswith("sha256:") else "Loaded image: "
            click.echo(prefix + _short(name))


def _short(name: str) -> str:
    if name.startswith("sha256:"):
        return name
    from dockyard.oci import reference

    ref = reference.parse(name)
    return f"{ref.familiar}:{ref.tag}"


@click.group("image")
def image_group() -> None:
    """Manage images."""


@image_group.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None)
def image_inspect(names: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more images."""
    click.echo(render_inspect([_engine().images.inspect(name) for name in names], fmt))


@image_group.command("prune")
@click.option("-a", "--all", "all_images", is_flag=True, help="Remove all unused images.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def image_prune(all_images: bool, force: bool) -> None:
    """Remove unused images."""
    deleted, freed = _engine().images.prune(all_images=all_images)
    if deleted:
        click.echo("Deleted Images:")
        for image_id in deleted:
            click.echo(f"deleted: {image_id}")
    click.echo(f"Total reclaimed space: {human_size(freed)}")


for _name, _cmd in (("ls", images_cmd), ("rm", rmi_cmd), ("tag", tag_cmd),
                    ("history", history_cmd), ("save", save_cmd), ("load", load_cmd),
                    ("import", import_cmd)):
    image_group.add_command(_cmd, _name)
for _cmd in TRUST_COMMANDS:  # keygen, sign, verify
    image_group.add_command(_cmd)


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click_options(INSPECT_OPTIONS)
def inspect_cmd(names: tuple[str, ...], fmt: str | None) -> None:
    """Inspect containers or images (a container wins when both match, as in Docker)."""
    image_cmds.inspect(_engine(), *names, fmt=fmt)


COMMANDS = [import_cmd, images_cmd, tag_cmd, rmi_cmd, history_cmd, save_cmd, load_cmd,
            image_group, inspect_cmd]
