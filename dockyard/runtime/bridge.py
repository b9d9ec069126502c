"""Run a bundle in the foreground from library code (what ``dockyard run-bundle`` uses)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from dockyard.errors import RuntimeContainerNotFound as ContainerNotFound
from dockyard.runtime import operations
from dockyard.runtime.bundle import load_bundle
from dockyard.runtime.create import CreateOptions, create


def run_bundle_foreground(root: Path, container_id: str, bundle_dir: Path, *,
                          detach: bool = False) -> int:
    """create + start; unless detached, wait, delete, and return the exit code."""
    from dockyard.runtime.commands import _wait_forwarding_signals

    bundle = load_bundle(str(bundle_dir))
    record = create(root, container_id, bundle, CreateOptions())
    try:
        operations.start(root, container_id)
    except BaseException:
        operations.delete(root, container_id, force=True)
        raise
    if detach:
        return 0
    try:
        return _wait_forwarding_signals(record.pid, None)
    finally:
        with contextlib.suppress(ContainerNotFound):
            operations.delete(root, container_id, force=True)
