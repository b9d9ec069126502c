"""More container commands: exec, pause, unpause, rename, top, update, stats, diff,
commit, export, cp, container prune."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from dockyard.cli.container_cmds import EXEC_OPTIONS, exec_
from dockyard.cli.containers import container_group
from dockyard.cli.flagtable import click_options
from dockyard.cli.render import human_size, render
from dockyard.engine.engine import Engine
from dockyard.engine.flags import parse_bytes, parse_cpus
from dockyard.errors import InvalidArgument, NotFound


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click_options(EXEC_OPTIONS)
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_cmd(engine: Engine, /, container: str, command: tuple[str, ...], **o: Any) -> None:
    """Run a command in a running container (its stdio is this terminal's); exit with
    its code, or Docker's 127 (not found) / 126 (cannot be run)."""
    sys.exit(exec_(engine, container, *command, **o))


@click.command("pause")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def pause_cmd(engine: Engine, containers: tuple[str, ...]) -> None:
    """Freeze every process in containers."""
    from dockyard.cli.containers import _each

    _each(containers, engine.container_ops.pause)


@click.command("unpause")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def unpause_cmd(engine: Engine, containers: tuple[str, ...]) -> None:
    """Thaw paused containers."""
    from dockyard.cli.containers import _each

    _each(containers, engine.container_ops.unpause)


@click.command("rename")
@click.argument("container")
@click.argument("new_name")
@click.pass_obj
def rename_cmd(engine: Engine, container: str, new_name: str) -> None:
    """Rename a container."""
    engine.container_ops.rename(container, new_name)


@click.command("top")
@click.argument("container")
@click.argument("ps_args", nargs=-1)
@click.pass_obj
def top_cmd(engine: Engine, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    titles, rows = engine.container_ops.top(container, ps_args)
    table = [dict(zip(titles, row, strict=False)) for row in rows]
    click.echo(render(table, titles, None, {t: t for t in titles}))


@click.command("update")
@click.option("-m", "--memory")
@click.option("--memory-reservation")
@click.option("--pids-limit", type=int)
@click.option("--cpus")
@click.option("--cpu-shares", type=int)
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def update_cmd(engine: Engine, memory: str | None, memory_reservation: str | None,
               pids_limit: int | None, cpus: str | None, cpu_shares: int | None,
               containers: tuple[str, ...]) -> None:
    """Update the resource limits of containers."""
    from dockyard.cli.containers import _each

    reservation = parse_bytes(memory_reservation, "--memory-reservation") \
        if memory_reservation else None
    _each(containers, lambda ref: engine.container_ops.update(
        ref, memory=parse_bytes(memory, "--memory") if memory else None,
        pids_limit=pids_limit, nano_cpus=parse_cpus(cpus) if cpus else None,
        cpu_shares=cpu_shares, memory_reservation=reservation))


@click.command("stats")
@click.option("--no-stream", is_flag=True, help="Print once (the only mode for now).")
@click.option("--format", "fmt", default=None)
@click.argument("containers", nargs=-1)
@click.pass_obj
def stats_cmd(engine: Engine, no_stream: bool, fmt: str | None,
              containers: tuple[str, ...]) -> None:
    """Resource usage of running containers."""
    refs = containers or tuple(r.id for r in engine.containers.list())
    rows = []
    for ref in refs:
        s = engine.container_ops.stats(ref)
        limit = s["memory_limit"]
        rows.append({"Container": s["id"][:12], "Name": s["name"],
                     "MemUsage": f"{human_size(s['memory_usage'])} / {human_size(limit)}",
                     "MemPerc": f"{100 * s['memory_usage'] / limit:.2f}%" if limit else "--",
                     "CPUTime": f"{s['cpu_ns'] / 1e9:.2f}s", "PIDs": str(s["pids"])})
    click.echo(render(rows, ["Container", "Name", "CPUTime", "MemUsage", "MemPerc", "PIDs"], fmt,
                      {"Container": "CONTAINER ID", "Name": "NAME", "CPUTime": "CPU TIME",
                       "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "PIDs": "PIDS"}))


@click.command("diff")
@click.argument("container")
@click.pass_obj
def diff_cmd(engine: Engine, container: str) -> None:
    """Changes to a container's filesystem: A added, C changed, D deleted."""
    for kind, path in engine.container_ops.diff(container):
        click.echo(f"{kind} {path}")


@click.command("commit")
@click.option("-m", "--message", default="")
@click.option("-a", "--author", default="")
@click.option("-c", "--change", multiple=True)
@click.argument("container")
@click.argument("ref", required=False)
@click.pass_obj
def commit_cmd(engine: Engine, message: str, author: str, change: tuple[str, ...],
               container: str, ref: str | None) -> None:
    """Create a new image from a container's changes."""
    from dockyard.cli.images import _parse_changes

    click.echo(engine.container_ops.commit(container, ref, message=message, author=author,
                                           changes=_parse_changes(change)))


@click.command("export")
@click.option("-o", "--output", default=None)
@click.argument("container")
@click.pass_obj
def export_cmd(engine: Engine, output: str | None, container: str) -> None:
    """Export a container's filesystem as a tar archive."""
    if output is None:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or "
                                  "redirect")
        engine.container_ops.export(container, sys.stdout.buffer)
        return
    with open(output, "wb") as out:
        engine.container_ops.export(container, out)


@click.command("cp")
@click.argument("source")
@click.argument("dest")
@click.pass_obj
def cp_cmd(engine: Engine, source: str, dest: str) -> None:
    """Copy files between a container and the host (CONTAINER:PATH, a host path, or -)."""
    import tempfile

    from dockyard.fs.inroot import Root
    from dockyard.fs.tartree import write_entry_tar
    from dockyard.snapshots.unpack import TarRules, extract_tar

    ops = engine.container_ops
    if ":" in source and not source.startswith(("/", ".")):
        container, path = source.split(":", 1)
        if dest == "-":
            ops.copy_out(container, path, sys.stdout.buffer)
            return
        into = os.path.isdir(dest)
        target = dest if into else os.path.dirname(dest) or "."
        with tempfile.TemporaryFile() as spool:
            ops.copy_out(container, path, spool,
                         arcname=None if into else os.path.basename(dest.rstrip("/")))
            spool.seek(0)
            # what the container wrote lands below the destination only: no entry below
            # a symlink, files owned by the caller, no set-id bits (as docker cp)
            with Root(target, what="destination") as root:
                extract_tar(spool, root, "/", TarRules(
                    whiteouts=False, follow=False, overwrite=False,
                    owner=(os.getuid(), os.getgid()), mode_mask=0o1777, what="cp"))
        return
    if ":" not in dest:
        raise InvalidArgument("cp: one side must be CONTAINER:PATH")
    container, path = dest.split(":", 1)
    if source == "-":
        ops.copy_in(container, sys.stdin.buffer, path)
        return
    parent, name = os.path.split(os.path.abspath(source))
    target, arcname = _copy_in_target(ops, container, path, name, os.path.isdir(source))
    with tempfile.TemporaryFile() as spool, Root(parent, what="source") as root:
        try:
            write_entry_tar(root.fd, name, spool, arcname=arcname)
        except FileNotFoundError:
            raise NotFound(f"no such file or directory: {source}") from None
        spool.seek(0)
        ops.copy_in(container, spool, target)


def _copy_in_target(ops: Any, container: str, path: str, name: str,
                    is_dir: bool) -> tuple[str, str]:
    """Docker's rules: into DEST when it is a directory; otherwise DEST names the copy
    (its parent must exist; a file source may not go to a missing ``DIR/``)."""
    import stat

    found = ops.stat_path(container, path)
    if found is not None and stat.S_ISDIR(found.st_mode):
        return path, name
    if found is None and path.endswith("/") and not is_dir:
        raise NotFound(f"Could not find the directory {path} in container {container}")
    if found is not None and is_dir:
        raise InvalidArgument(f"cannot copy a directory to {path}: it is not a directory")
    parent, base = os.path.split(path.rstrip("/") or "/")
    return parent or "/", base


@container_group.command("prune")
@click.option("-f", "--force", is_flag=True)
@click.pass_obj
def container_prune(engine: Engine, force: bool) -> None:
    """Remove all stopped containers."""
    removed = engine.container_ops.prune()
    if removed:
        click.echo("Deleted Containers:")
        for container_id in removed:
            click.echo(container_id)
    click.echo(f"Total reclaimed space: {len(removed)} container(s)")


COMMANDS: list[Any] = [exec_cmd, pause_cmd, unpause_cmd, rename_cmd, top_cmd, update_cmd,
                       stats_cmd, diff_cmd, commit_cmd, export_cmd, cp_cmd]
for _command in COMMANDS:
    container_group.add_command(_command)
