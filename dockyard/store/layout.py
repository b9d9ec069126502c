"""Every path dockyard uses under its root, in one place.

Persistent data lives under ``--root`` (default /var/lib/dockyard); run state
(runtime records, sockets) under /run/dockyard for the default root, or under
``<root>/run`` for any other, so independent instances can live side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from dockyard.errors import InvalidArgument
from dockyard.store import reserve
from dockyard.store.oserror import translated

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
    def owner_tag(self) -> str:
        """This root's mark on the host objects it makes outside itself (the alias of
        its links, the name of its cgroups), so ``system reset`` finds them by the
        path alone, also once the directory is gone."""
        import hashlib  # (~3 ms of OpenSSL loading: not for commands that never ask)

        return hashlib.sha1(str(self.root).encode()).hexdigest()[:16]

    @property
    def link_alias(self) -> str:
        """The alias (``ip link`` shows it) of every bridge and veth this root makes."""
        return f"dockyard-root-{self.owner_tag}"

    def cgroup_path(self, name: str) -> str:
        """The cgroup (``cgroupsPath``) of a container or build step of this root."""
        return f"/dockyard-{self.owner_tag}-{name}"

    @property
    def runtime_root(self) -> Path:
        """State of the OCI runtime (what ``dockyard-runtime --root`` points at)."""
        return self.run_dir / "runtime"

    def ensure(self) -> None:
        """Make the root and the run dir (an existing one is left as it is, also on a
        read-only filesystem) and the root's space reserve."""
        for path, flag in ((self.root, "--root "), (self.run_dir, "")):
            with translated(path, prefix=flag):
                if path.exists() and not path.is_dir():
                    raise InvalidArgument(f"{flag}{path}: not a directory")
                try:
                    path.mkdir(mode=0o711, parents=True, exist_ok=True)
                except FileNotFoundError as exc:  # a parent that cannot be made (/proc/x)
                    raise InvalidArgument(f"{flag}{path}: no such file or directory") from exc
        reserve.ensure(self.root)
