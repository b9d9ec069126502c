"""``system reset``: everything a root holds, and every host object it made.

In order: the containers the records know (``rm -f -v``: killed through their
supervisors, unmounted), the networks (bridges, iptables chains); then what is found
by the root's mark alone, so a root whose directory was deleted by hand is cleaned
as well: cgroups named ``dockyard-<tag>-…`` (their processes killed, so the
containers' network namespaces and veth pairs go too), links whose alias is the
root's (``dockyard-root-<tag>``) and the ports of its bridges, its default bridge
and its iptables chains (both named after the root's path); last, every mount left
below the root or the run dir is detached and both directories are removed
(images, volumes, build cache).  Nothing else is touched: Docker's bridges and
chains, other roots' objects, links without our alias.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from dockyard.errors import DockyardError, InvalidArgument

if TYPE_CHECKING:
    from dockyard.engine.engine import Engine
    from dockyard.store.layout import Layout


def reset(engine: Engine) -> list[str]:
    """Remove everything of ``engine``'s root; returns what was removed, a line each
    (containers by ID, then host objects, then the directories)."""
    layout = engine.layout
    _refuse_a_foreign_directory(layout)
    removed = []
    if (layout.root / "metadata.db").is_file():
        removed += _records(engine)
    removed += [f"cgroup {name}" for name in _cgroups(layout)]
    removed += [f"link {name}" for name in _links(layout)]
    removed += [f"iptables chain {name}" for name in _chains(layout)]
    removed += _directories(layout)
    return removed


def _refuse_a_foreign_directory(layout: Layout) -> None:
    """A root that is there must be one dockyard made (``metadata.db`` or the space
    ``reserve`` in it) or be empty: ``--root`` mistyped as a home directory or a file
    is refused before anything is removed."""
    import stat

    from dockyard.store import reserve

    try:
        info = os.lstat(layout.root)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InvalidArgument(f"--root {layout.root}: {exc.strerror}") from exc
    if stat.S_ISDIR(info.st_mode):
        with contextlib.suppress(OSError):
            entries = set(os.listdir(layout.root))
            if not entries or {"metadata.db", reserve.NAME} & entries:
                return
    raise InvalidArgument(f"--root {layout.root} is not a dockyard root (no metadata.db in "
                          "it): nothing removed")


def _records(engine: Engine) -> list[str]:
    """What the records know, removed as ``rm -f -v`` and ``network prune`` do; a
    broken or read-only store is left to the sweep by mark that follows."""
    removed = []
    with contextlib.suppress(DockyardError, OSError):
        for record in engine.containers.list(all_containers=True):
            with contextlib.suppress(DockyardError, OSError):
                removed.append(engine.containers.remove(record.id, force=True, volumes=True))
        engine.networks.prune()
    return removed


def _cgroups(layout: Layout) -> list[str]:
    from dockyard.runtime.linux.cgroups import DEFAULT_ROOT
    from dockyard.runtime.linux.cgroups.sweep import remove_named

    return remove_named(layout.cgroup_path("").lstrip("/"), DEFAULT_ROOT)


def _links(layout: Layout) -> list[str]:
    from dockyard.engine.networks import default_bridge
    from dockyard.network.bridge import delete_link, links_of

    removed = []
    for name in links_of(layout.link_alias, {default_bridge(layout)[0]}):
        with contextlib.suppress(Exception):  # pyroute2's NetlinkError: gone meanwhile
            if delete_link(name):
                removed.append(name)
    return removed


def _chains(layout: Layout) -> list[str]:
    from dockyard.network import firewall

    root = str(layout.root)
    found = firewall.existing_chains(root)
    if found:
        firewall.remove(root)
    return found


def _directories(layout: Layout) -> list[str]:
    """Detach every mount left below the run dir and the root (deepest first: never
    remove a tree across a live mount), then remove both."""
    from dockyard.fs.tree import remove_tree
    from dockyard.runtime.linux.rootfs import mounts_made_under
    from dockyard.snapshots.mount import unmount

    removed = []
    for directory in (layout.run_dir, layout.root):
        for _id, point in reversed(mounts_made_under(str(directory), set())):
            with contextlib.suppress(DockyardError, OSError):
                unmount(point)
        if directory.exists():
            remove_tree(directory)
            removed.append(str(directory))
    return removed
