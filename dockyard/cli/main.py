"""The ``dockyard`` command: a click group whose commands import their work lazily.

Front ends stay thin: parse flags, call the library, render.  Every
``DockyardError`` becomes a one-line message (and hint) with a non-zero exit, and
so does an ``OSError`` a user can act on (a full disk, a read-only root, a denied
path: ``store.oserror``) that no seam below translated; any other exception is a
bug and prints its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dockyard import trace

trace.begin("cli")  # before the heavy imports: DOCKYARD_TRACE=1 times them too

import click  # noqa: E402

from dockyard.cli.errors import guarded  # noqa: E402
from dockyard.engine.engine import Engine  # noqa: E402
from dockyard.store.layout import Layout  # noqa: E402

# command name → the modules that define it (imported only when that command runs,
# so `dockyard build` does not pay for the container commands' imports); checked
# against each module's COMMANDS by tests/unit/test_cli_lazy.py
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    **{name: ("images",) for name in ("import", "images", "tag", "rmi", "history", "save",
                                       "load", "image", "inspect")},
    **{name: ("registry",) for name in ("pull", "push", "login", "logout")},
    **{name: ("containers",) for name in ("attach", "create", "run", "start", "stop",
                                           "restart", "kill", "rm", "ps", "port", "logs",
                                           "wait")},
    "container": ("containers", "container_ops"),
    **{name: ("container_ops",) for name in ("exec", "pause", "unpause", "rename", "top",
                                              "update", "stats", "diff", "commit", "export",
                                              "cp")},
    "volume": ("volumes",), "network": ("networks",), "system": ("system",),
    "events": ("system",),
    "build": ("build",), "builder": ("build",), "serve": ("serve",),
    "compose": ("compose",), "kube": ("kube",),
    "sbom": ("supply",), "scan": ("supply",),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in COMMAND_MODULES:
            return command
        import importlib

        found = None
        for module_name in COMMAND_MODULES[cmd_name]:
            module = importlib.import_module(f"dockyard.cli.{module_name}")
            for candidate in module.COMMANDS:
                if candidate.name == cmd_name and found is None:
                    found = candidate
        return found


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="DOCKYARD_ROOT", default=None, metavar="DIR",
              help="Root of dockyard's state (default /var/lib/dockyard; env DOCKYARD_ROOT).")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
              envvar="DOCKYARD_INSECURE_REGISTRIES",
              help="Talk plain HTTP to this registry (127.0.0.1 and localhost always may).")
@click.option("--policy", default=None, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Signature policy (containers-policy.json) pulls obey (default "
                   "/etc/containers/policy.json, if there).")
@click.option("--registries.d", "registries_d", default=None, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Where signatures are stored (default /etc/containers/registries.d).")
@click.version_option("0.1.0", prog_name="dockyard")
@click.pass_context
def cli(ctx: click.Context, root: str | None, insecure: tuple[str, ...], policy: Path | None,
        registries_d: Path | None) -> None:
    """dockyard: build and run OCI containers, Docker-compatible, no daemon required."""
    ctx.obj = Engine(Layout.for_root(root), insecure_registries=frozenset(insecure),
                     policy=policy, registries_d=registries_d)


@cli.command()
@click.pass_obj
def info(engine: Engine) -> None:
    """Show where dockyard keeps its state and what this host supports."""
    import os
    import platform

    from dockyard.runtime.linux import cgroups

    layout = engine.layout
    unified = os.path.join(cgroups.DEFAULT_ROOT, "cgroup.controllers")
    version = 2 if os.path.exists(unified) else 1
    click.echo(f"Root Dir: {layout.root}")
    click.echo(f"Run Dir: {layout.run_dir}")
    click.echo("Runtime: dockyard-runtime (built in)")
    click.echo(f"Cgroup Version: {version}")
    click.echo(f"Kernel Version: {platform.release()}")
    click.echo(f"Running as root: {os.geteuid() == 0}")


@cli.command("run-bundle")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default=None, help="Container id (default: generated).")
@click.option("-d", "--detach", is_flag=True, help="Leave the container running.")
@click.pass_obj
def run_bundle(engine: Engine, bundle: Path, name: str | None, detach: bool) -> None:
    """Run an OCI bundle (a config.json and its rootfs) with the built-in runtime.

    Output goes to this terminal; the exit status is the container's.
    """
    import uuid

    from dockyard.runtime.bridge import run_bundle_foreground

    layout = engine.layout
    layout.ensure()
    container_id = name or uuid.uuid4().hex[:12]
    code = run_bundle_foreground(layout.runtime_root, container_id, bundle, detach=detach)
    if detach:
        click.echo(container_id)
    sys.exit(code)


def subcommand(argv: list[str]) -> list[str]:
    """The command words of a command line: ``["run"]``, ``["container", "run"]`` (the
    group's options and their values skipped; arguments after the command ignored)."""
    takes_value = {o for p in cli.params if isinstance(p, click.Option) and not p.is_flag
                   for o in p.opts}
    words: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in takes_value:
            next(args, None)
        elif arg.startswith("-"):
            continue
        else:
            words.append(arg)
            if arg != "container":
                break
    return words


def _is_run() -> bool:
    return subcommand(sys.argv[1:]) in (["run"], ["container", "run"], ["run-bundle"])


def main() -> None:
    trace.mark("imports done")
    try:
        _main()
    finally:
        trace.report()


def _main() -> None:
    def call() -> object:
        try:
            # without standalone mode, click returns a command's Exit(code)
            return cli.main(standalone_mode=False)
        except click.exceptions.Abort:
            return 130
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code

    sys.exit(guarded(call, run=_is_run()))


if __name__ == "__main__":
    main()
