"""``dockyard build`` and ``dockyard builder prune``; build progress rendering.

Progress goes to stderr like Docker's: ``--progress plain`` prints BuildKit-style
numbered lines (``#3 [2/5] RUN make``, its output, ``#3 DONE 1.2s`` or
``#3 CACHED``); ``tty`` (the default on a terminal) keeps a live view of running
steps with the last lines of their output; ``quiet`` / ``-q`` prints only the
image ID on stdout.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.text import Text

    from dockyard.engine.builds import BuildRequest
    from dockyard.engine.engine import Engine


class PlainReporter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}

    def _echo(self, text: str) -> None:
        with self._lock:
            click.echo(text, err=True)

    def step_started(self, step: int, title: str) -> None:
        self._started[step] = time.monotonic()
        self._echo(f"#{step} {title}")

    def step_output(self, step: int, line: str) -> None:
        elapsed = time.monotonic() - self._started.get(step, time.monotonic())
        self._echo(f"#{step} {elapsed:.3f} {line}")

    def step_finished(self, step: int, *, cached: bool, seconds: float) -> None:
        self._echo(f"#{step} CACHED" if cached else f"#{step} DONE {seconds:.1f}s")

    def step_failed(self, step: int, message: str) -> None:
        self._echo(f"#{step} ERROR: {message.splitlines()[0]}")

    def warning(self, text: str) -> None:
        self._echo(f"[Warning] {text}")


class TtyReporter:
    """A live view (rich): finished steps scroll up, running ones show their last
    output lines and a timer."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._lock = threading.Lock()
        self._running: dict[int, tuple[str, float, list[str]]] = {}
        self._console = Console(stderr=True)
        self._live = Live(console=self._console, refresh_per_second=8, transient=True,
                          get_renderable=self._render)

    def __enter__(self) -> TtyReporter:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def _render(self) -> Text:
        from rich.text import Text

        text = Text()
        with self._lock:
            for step, (title, started, tail) in sorted(self._running.items()):
                text.append(f" => #{step} {title}", style="bold blue")
                text.append(f"  {time.monotonic() - started:.1f}s\n")
                for line in tail:
                    text.append(f"    {line}\n", style="dim")
        return text

    def step_started(self, step: int, title: str) -> None:
        with self._lock:
            self._running[step] = (title, time.monotonic(), [])

    def step_output(self, step: int, line: str) -> None:
        with self._lock:
            if step in self._running:
                tail = self._running[step][2]
                tail.append(line)
                del tail[:-6]

    def _finish(self, step: int, status: str, style: str) -> None:
        with self._lock:
            title, started, _tail = self._running.pop(step, ("", time.monotonic(), []))
        from rich.text import Text

        self._console.print(Text.assemble(f" => #{step} {title} ", (status, style)),
                            highlight=False)

    def step_finished(self, step: int, *, cached: bool, seconds: float) -> None:
        self._finish(step, "CACHED" if cached else f"{seconds:.1f}s", "green")

    def step_failed(self, step: int, message: str) -> None:
        self._finish(step, "ERROR", "red")

    def warning(self, text: str) -> None:
        self._console.print(f"[yellow][Warning][/] {text}", highlight=False)


def _key_values(values: tuple[str, ...], what: str) -> dict[str, str]:
    import os

    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=what)
        if not sep and what == "--build-arg":  # Docker: take the value from the environment
            if key not in os.environ:
                continue
            value = os.environ[key]
        result[key] = value
    return result


@click.command("build")
@click.argument("context")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]",
              help="Name the image (repeatable).")
@click.option("-f", "--file", "dockerfile", default=None,
              help="The Dockerfile (default CONTEXT/Dockerfile; - for stdin).")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY=VALUE")
@click.option("--target", default=None, help="Build this stage.")
@click.option("--no-cache", is_flag=True, help="Do not use the build cache.")
@click.option("--pull", is_flag=True, help="Always pull base images.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE")
@click.option("--iidfile", default=None, help="Write the image ID to this file.")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty", "quiet"]),
              default="auto")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option("--secret", "secrets", multiple=True, metavar="id=ID,src=FILE|env=VAR")
@click.option("-o", "--output", "outputs", multiple=True,
              metavar="type=oci|docker|tar|local,dest=PATH")
@click.option("--network", type=click.Choice(["default", "none", "host"]), default="default",
              help="Network for RUN steps.")
@click.option("--sbom", is_flag=True,
              help="Attach an SBOM (SPDX JSON) to the image as an OCI referrer; push "
                   "carries it.")
@click.option("--sbom-format", type=click.Choice(["spdx-json", "cyclonedx-json"]),
              default=None, help="--sbom in this format.")
@click.option("--pin", is_flag=True,
              help="Rewrite the Dockerfile's FROM lines to the digests the build used.")
@click.option("--build-context", "contexts", multiple=True, metavar="NAME=DIR|docker-image://REF",
              help="A named context for FROM NAME / COPY --from=NAME (repeatable).")
@click.option("--cache-from", "cache_from", multiple=True, metavar="REF",
              help="An image whose inline cache this build may use (repeatable).")
@click.option("--cache-to", "cache_to", type=click.Choice(["type=inline"]), default=None,
              help="Write the steps into the image (an inline cache for --cache-from).")
@click.pass_obj
def build_cmd(engine: Engine, context: str, tags: tuple[str, ...], dockerfile: str | None,
              build_args: tuple[str, ...], target: str | None, no_cache: bool, pull: bool,
              labels: tuple[str, ...], iidfile: str | None, progress: str, quiet: bool,
              secrets: tuple[str, ...], outputs: tuple[str, ...], network: str,
              sbom: bool, sbom_format: str | None, pin: bool,
              contexts: tuple[str, ...], cache_from: tuple[str, ...],
              cache_to: str | None) -> None:
    """Build an image from a Dockerfile and a context (a directory, or - for stdin)."""
    from dockyard.build.executor import BuildOptions, Reporter
    from dockyard.engine.builds import BuildRequest, named_contexts, parse_output, parse_secret
    from dockyard.oci import reference

    for tag in tags:
        reference.parse(tag)  # a bad name fails before any work
    if context == "-" and dockerfile == "-":
        raise click.UsageError("the context and the Dockerfile cannot both come from stdin")
    options = BuildOptions(tags=tags, build_args=_key_values(build_args, "--build-arg"),
                           target=target, no_cache=no_cache, pull=pull,
                           labels=_key_values(labels, "--label"),
                           secrets=dict(parse_secret(s) for s in secrets), network=network,
                           contexts=named_contexts(_key_values(contexts, "--build-context")),
                           cache_from=tuple(r.removeprefix("type=registry,ref=")
                                            for r in cache_from),
                           inline_cache=cache_to is not None)
    request = BuildRequest(context, dockerfile, options,
                           tuple(parse_output(o) for o in outputs))
    if quiet:
        progress = "quiet"
    if progress == "auto":
        progress = "tty" if sys.stderr.isatty() else "plain"
    reporter: Reporter
    started = time.monotonic()
    if progress == "tty":
        with TtyReporter() as live:
            image_id = engine.builds.build(request, live)
    else:
        from dockyard.build.model import SilentReporter

        reporter = SilentReporter() if progress == "quiet" else PlainReporter()
        image_id = engine.builds.build(request, reporter)
    if sbom or sbom_format or pin:
        _supply_steps(engine, request, image_id,
                      (sbom_format or "spdx-json") if sbom or sbom_format else None, pin)
    if iidfile:
        from pathlib import Path

        from dockyard.store.atomic import atomic_write

        atomic_write(Path(iidfile), image_id.encode(), 0o644)
    if progress == "quiet":
        click.echo(image_id)
        return
    click.echo(f"writing image {image_id} done ({time.monotonic() - started:.1f}s)", err=True)
    for tag in tags:
        click.echo(f"naming to {reference.parse(tag)} done", err=True)
    click.echo(image_id)


def _supply_steps(engine: Engine, request: BuildRequest, image_id: str, sbom: str | None,
                  pin: bool) -> None:
    from dockyard.engine.supply import SupplyChain

    supply = SupplyChain(engine)
    if sbom:
        # the document names the image by its first tag (its ID when it has none)
        referrer = supply.attach_sbom(request.options.tags[0] if request.options.tags
                                      else image_id, sbom)
        click.echo(f"attached SBOM ({sbom}) {referrer.digest}", err=True)
    if pin:
        path, changes = supply.pin_dockerfile(request)
        for change in changes:
            click.echo(f"{path}:{change.line}: FROM {change.before} -> {change.after}"
                       if change.after else f"{path}:{change.line}: FROM {change.before} not "
                       "pinned: the build did not use it (pull it, or build that stage)",
                       err=True)


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
