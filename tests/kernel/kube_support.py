"""What every kube test's root needs afterwards: each play's controller log shown (a
failing test's story), and everything the YAML files beside the root made taken down."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from dockyard.testing.cli import Dockyard


@contextlib.contextmanager
def kube_root(box: Dockyard) -> Iterator[Dockyard]:
    yield box
    for log in (box.root / "kube" / "controllers").glob("*.log"):
        print(f"--- {log.name}\n{log.read_text()}")
    for path in box.root.parent.glob("*.yaml"):
        box("kube", "down", str(path), check=False)
