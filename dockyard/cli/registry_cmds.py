"""The body of ``pull``, without click (the fast path's, as ``container_cmds`` for the
container commands): a pull's own work is its download, but its start-up was ~100 ms
against skopeo's ~33, and click was ~17 ms of it."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from dockyard import trace
from dockyard.cli.container_cmds import echo
from dockyard.cli.flagtable import Opt, opt

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.registry.transfer import Progress

# (--tls-verify/--no-tls-verify, a click flag pair, is click's alone: the fast path
# hands a command that has it to click)
PULL_OPTIONS: tuple[Opt, ...] = (
    opt("-q", "--quiet", kind="flag", help="Suppress verbose output."),
)


def insecure_for(engine: Engine, tls_verify: bool, ref: str) -> frozenset[str]:
    """The registries reached without TLS: the engine's, and ``ref``'s with
    ``--no-tls-verify``."""
    from dockyard.oci import reference

    extra = set(engine.insecure_registries)
    if not tls_verify:
        extra.add(reference.parse(ref).registry)
    return frozenset(extra)


def progress_for(quiet: bool) -> contextlib.AbstractContextManager[Progress]:
    """Per-layer lines, or nothing with -q (Docker prints only the reference then)."""
    if quiet:
        from dockyard.registry.transfer import NoProgress

        return contextlib.nullcontext(NoProgress())
    from dockyard.cli.progress import progress_for_terminal

    return progress_for_terminal()


def pull(engine: Engine, ref: str, *, quiet: bool, tls_verify: bool = True) -> None:
    """``pull``: the image stored; Docker's lines about it (the reference alone
    with -q)."""
    from dockyard.cli.heap import keep_freed_pieces
    from dockyard.oci import reference

    parsed = reference.parse(ref)
    keep_freed_pieces()  # (this process ends with the pull)
    images = engine.images
    trace.mark("pull: store open")
    with progress_for(quiet) as progress:
        digest = engine.pull_image(ref, insecure=insecure_for(engine, tls_verify, ref),
                                   progress=progress)
    if quiet:
        echo(str(parsed))
        return
    shown = next((text.split("@", 1)[1] for text in images.index.repo_digests_of(digest)
                  if text.split("@", 1)[0] == parsed.name), digest)  # the registry's
    echo(f"Digest: {shown}")
    echo(f"Status: Downloaded newer image for {parsed}")
    echo(str(parsed))
