"""``dockyard build``'s body and flags, without click: progress rendering, the flags as
``flagtable`` rows (the click command in ``cli.build`` is made from them) and the
command itself, which the fast path (``cli.fast``) calls directly.  A fully cached
build is mostly start-up, and click's imports were ~20 ms of it.

Progress goes to stderr like Docker's: ``--progress plain`` prints BuildKit-style
numbered lines (``#3 [2/5] RUN make``, its output, ``#3 DONE 1.2s`` or
``#3 CACHED``); ``tty`` (the default on a terminal) keeps a live view of running
steps with the last lines of their output; ``quiet`` / ``-q`` prints only the
image ID on stdout.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dockyard.cli.flagtable import Opt, opt

if TYPE_CHECKING:
    from rich.text import Text

    from dockyard.engine.builds import BuildRequest
    from dockyard.engine.engine import Engine

BUILD_OPTIONS: Sequence[Opt] = (
    opt("-t", "--tag", dest="tags", kind="multi", metavar="NAME[:TAG]",
        help="Name the image (repeatable)."),
    opt("-f", "--file", dest="dockerfile",
        help="The Dockerfile (default CONTEXT/Dockerfile; - for stdin)."),
    opt("--build-arg", dest="build_args", kind="multi", metavar="KEY=VALUE"),
    opt("--target", help="Build this stage."),
    opt("--no-cache", kind="flag", help="Do not use the build cache."),
    opt("--pull", kind="flag", help="Always pull base images."),
    opt("--label", dest="labels", kind="multi", metavar="KEY=VALUE"),
    opt("--iidfile", help="Write the image ID to this file."),
    opt("--progress", default="auto", choices=("auto", "plain", "tty", "quiet")),
    opt("-q", "--quiet", kind="flag", help="Print only the image ID."),
    opt("--secret", dest="secrets", kind="multi", metavar="id=ID,src=FILE|env=VAR"),
    opt("-o", "--output", dest="outputs", kind="multi",
        metavar="type=oci|docker|tar|local,dest=PATH"),
    opt("--network", default="default", choices=("default", "none", "host"),
        help="Network for RUN steps."),
    opt("--sbom", kind="flag",
        help="Attach an SBOM (SPDX JSON) to the image as an OCI referrer; push carries it."),
    opt("--sbom-format", choices=("spdx-json", "cyclonedx-json"),
        help="--sbom in this format."),
    opt("--pin", kind="flag",
        help="Rewrite the Dockerfile's FROM lines to the digests the build used."),
    opt("--build-context", dest="contexts", kind="multi", metavar="NAME=DIR|docker-image://REF",
        help="A named context for FROM NAME / COPY --from=NAME (repeatable)."),
    opt("--cache-from", dest="cache_from", kind="multi", metavar="REF",
        help="An image whose inline cache this build may use (repeatable)."),
    opt("--cache-to", dest="cache_to", choices=("type=inline",),
        help="Write the steps into the image (an inline cache for --cache-from)."),
)
# the flags whose values are KEY=VALUE pairs, and how an error names them
KEY_VALUE_FLAGS = {"build_args": "--build-arg", "labels": "--label",
                   "contexts": "--build-context"}


def _say(text: str) -> None:
    """A line on stderr, as ``click.echo(err=True)`` wrote it: terminal escapes (a RUN
    step's colours) taken out unless stderr is a terminal."""
    if "\x1b" in text and not sys.stderr.isatty():
        import re

        text = re.sub(r"\033\[[;?0-9]*[a-zA-Z]", "", text)
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class PlainReporter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}

    def _echo(self, text: str) -> None:
        with self._lock:
            _say(text)

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


def bad_key_value(values: Sequence[str]) -> str | None:
    """The first item that is not KEY=VALUE (an empty key), or None."""
    return next((item for item in values if not item.partition("=")[0]), None)


def key_values(values: Sequence[str], what: str) -> dict[str, str]:
    """``KEY=VALUE`` items as a dict (``bad_key_value`` checked first); a bare
    ``--build-arg KEY`` takes its value from the environment, as Docker's does, and
    is left out when the variable is unset."""
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep and what == "--build-arg":
            if key not in os.environ:
                continue
            value = os.environ[key]
        result[key] = value
    return result


def fits(positionals: list[str], options: dict[str, Any]) -> bool:
    """Whether the fast path may run this build: what ``cli.build``'s click command
    refuses with its own usage error (both the context and the Dockerfile from
    stdin, a KEY=VALUE flag without a key) is left to it."""
    if positionals[:1] == ["-"] and options.get("dockerfile") == "-":
        return False
    return all(bad_key_value(options.get(dest) or ()) is None for dest in KEY_VALUE_FLAGS)


def build(engine: Engine, context: str, *, tags: tuple[str, ...], dockerfile: str | None,
          build_args: tuple[str, ...], target: str | None, no_cache: bool, pull: bool,
          labels: tuple[str, ...], iidfile: str | None, progress: str, quiet: bool,
          secrets: tuple[str, ...], outputs: tuple[str, ...], network: str,
          sbom: bool, sbom_format: str | None, pin: bool,
          contexts: tuple[str, ...], cache_from: tuple[str, ...],
          cache_to: str | None) -> int:
    """Build an image from a Dockerfile and a context (a directory, or - for stdin)."""
    from dockyard.build.executor import BuildOptions, Reporter
    from dockyard.engine.builds import BuildRequest, named_contexts, parse_output, parse_secret
    from dockyard.oci import reference

    for tag in tags:
        reference.parse(tag)  # a bad name fails before any work
    options = BuildOptions(tags=tags, build_args=key_values(build_args, "--build-arg"),
                           target=target, no_cache=no_cache, pull=pull,
                           labels=key_values(labels, "--label"),
                           secrets=dict(parse_secret(s) for s in secrets), network=network,
                           contexts=named_contexts(key_values(contexts, "--build-context")),
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
    if progress != "quiet":
        _say(f"writing image {image_id} done ({time.monotonic() - started:.1f}s)")
        for tag in tags:
            _say(f"naming to {reference.parse(tag)} done")
    sys.stdout.write(image_id + "\n")
    sys.stdout.flush()
    return 0


def _supply_steps(engine: Engine, request: BuildRequest, image_id: str, sbom: str | None,
                  pin: bool) -> None:
    from dockyard.engine.supply import SupplyChain

    supply = SupplyChain(engine)
    if sbom:
        # the document names the image by its first tag (its ID when it has none)
        referrer = supply.attach_sbom(request.options.tags[0] if request.options.tags
                                      else image_id, sbom)
        _say(f"attached SBOM ({sbom}) {referrer.digest}")
    if pin:
        path, changes = supply.pin_dockerfile(request)
        for change in changes:
            _say(f"{path}:{change.line}: FROM {change.before} -> {change.after}"
                 if change.after else f"{path}:{change.line}: FROM {change.before} not "
                 "pinned: the build did not use it (pull it, or build that stage)")
