"""Every path dockyard uses under its root, in one place.

Persistent data lives under ``--root`` (default /var/lib/dockyard); run state
(runtime records, sockets) under /run/dockyard for the default root, or under
``<root>/run`` for any other, so independent instances can live side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

DEFAULT_ROOT = Path("/var/lib/dockyard")
DEFAULT_RUN_DIR = Path("/run/dockyard")


class Layout(NamedTuple):
    root: Path
    run_dir: Path

    @classmethod
    def for_root(cls, root: Path | str | None) -> Layout:
        base = Path(root) if root else DEFAULT_ROOT
        base = base.absolute()
        return cls(base, DEFAULT_RUN_DIR if base == DEFAULT_ROOT else base / "run")

    @property
    def runtime_root(self) -> Path:
        """State of the OCI runtime (what ``dockyard-runtime --root`` points at)."""
        return self.run_dir / "runtime"

    def ensure(self) -> None:
        for path in (self.root, self.run_dir):
            path.mkdir(mode=0o711, parents=True, exist_ok=True)
