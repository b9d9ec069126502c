"""The supervisor's exit hook, run inside the supervisor instead of as a new process.

When a container's last exit is recorded its supervisor unmounts the rootfs, takes
its names out of the networks' DNS and, for ``--rm``, removes it with its
anonymous volumes (``ContainerService.on_exit``).  Run as ``dockyard system
container-exited`` that costs a fresh interpreter and the CLI's imports — ~85 ms,
more than the rest of a ``run --rm`` — and a foreground ``run --rm`` waits for it.
The zygote preloads this module (and so the engine code below it) before it forks
supervisors, so the hook is a function call on pages the zygote already holds.

The zygote's code stamp covers these packages too (``supervise.zygote``): an
upgraded engine gets a new zygote, never a hook of the old code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

# imported here, at module level, so the zygote's preload holds them all
import dockyard.engine.container_network  # noqa: F401
import dockyard.engine.containers  # noqa: F401 - Engine.containers imports it on first use
import dockyard.engine.events  # noqa: F401
import dockyard.engine.images  # noqa: F401 - and ContainerService.images, .networks
import dockyard.engine.networks  # noqa: F401
import dockyard.images.content  # noqa: F401
import dockyard.images.index  # noqa: F401
import dockyard.snapshots.mount  # noqa: F401
import dockyard.snapshots.overlay  # noqa: F401
import dockyard.store.config  # noqa: F401
import dockyard.volumes.store  # noqa: F401
from dockyard import trace
from dockyard.engine.engine import Engine
from dockyard.errors import NotFound
from dockyard.store.layout import Layout

ARGV_TAG = "@python"  # an exit hook given as [ARGV_TAG, module, function, *args]


def container_exited(root: str, container_id: str, *,
                     beside_done: Callable[[], bool] | None = None) -> None:
    """What ``dockyard --root ROOT system container-exited ID`` does.  ``beside_done``:
    the supervisor forked us once it recorded the container's last exit, and deletes
    the runtime's state meanwhile; the engine and its database are opened before
    waiting for that (with the container's lock held), and nothing of the container
    is read before.  If the supervisor died first (or its delete failed), the hook
    withdraws the runtime's state itself."""
    trace.mark("exit hook: forked")
    engine = Engine(Layout.for_root(root))
    service = engine.containers  # (its database opened)
    if beside_done is not None:
        trace.mark("exit hook: engine ready")
    with contextlib.suppress(NotFound):
        service.on_exit(container_id, supervisor_done=beside_done)


def supervisor_lost(root: str, container_id: str) -> None:
    """The zygote's watchdog: the container's supervisor was killed.  What any command
    does when it meets an orphaned container (``ContainerService.recovered``): a new
    supervisor adopts it (stdio to the log, exit recorded, restart policy kept), or,
    if it died meanwhile, its policy is applied — now, not at the next command."""
    from dockyard.errors import ContainerNotFound

    engine = Engine(Layout.for_root(root))
    with contextlib.suppress(NotFound, ContainerNotFound):
        service = engine.containers
        service.recovered(service.refresh(service.store.find(container_id)))


def health_changed(root: str, container_id: str, status: str) -> None:
    """The supervisor's health hook: the container's health status became ``status``."""
    from dockyard.errors import ContainerNotFound

    with contextlib.suppress(NotFound, ContainerNotFound):
        Engine(Layout.for_root(root)).containers.health_changed(container_id, status)


def argv(root: str, container_id: str) -> list[str]:
    """The ``--exit-hook`` argv naming this function."""
    return [ARGV_TAG, __name__, "container_exited", root, container_id]
