"""The ``dockyard`` CLI as tests and benchmarks drive it: its own root and Docker
config dir, output captured, the exit status checked unless asked not to; and a
throw-away root for benchmarks that leaves nothing behind, whatever happens."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dockyard.store.layout import Layout


def run_captured(argv: list[str], *, env: dict[str, str], input: bytes | None = None,
                 timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command with binary stdin intact and its output decoded."""
    raw = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, check=False,
                         input=input)
    result = subprocess.CompletedProcess(raw.args, raw.returncode,
                                         raw.stdout.decode(errors="replace"),
                                         raw.stderr.decode(errors="replace"))
    if check:
        assert result.returncode == 0, result.stderr
    return result


def free_port() -> int:
    """A TCP port on 127.0.0.1 the kernel says is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unmount_under(base: Path) -> None:
    """Detach every mount below ``base`` (deepest first)."""
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    for point in sorted((p for p in points if p.startswith(str(base) + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


class Dockyard:
    def __init__(self, root: Path, docker_config: Path) -> None:
        self.root = root
        self.env = dict(os.environ, DOCKER_CONFIG=str(docker_config))
        self.env.setdefault("DOCKYARD_IP_FORWARD", "0")  # (see dockyard.testing)
        beside = Path(sys.executable).with_name("dockyard")
        self.argv = [str(beside)] if beside.exists() else [sys.executable, "-m",
                                                           "dockyard.cli.main"]

    @property
    def layout(self) -> Layout:
        """This root's paths and names (its cgroups' and links' mark among them)."""
        return Layout.for_root(self.root)

    def __call__(self, *args: str, check: bool = True, input: bytes | None = None,
                 root: Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_captured([*self.argv, "--root", str(root or self.root), *args],
                            env={**self.env, **(env or {})}, input=input, check=check)

    def remove_everything(self) -> None:
        """Every container of this root (with its anonymous volumes), its networks
        (bridges, iptables chains) and its volumes (a tmpfs-backed one is a mount)."""
        ids = self("ps", "-a", "-q", "--no-trunc", check=False).stdout.split()
        if ids:
            self("rm", "-f", "-v", *ids, check=False)
        self("network", "prune", "-f", check=False)
        names = self("volume", "ls", "-q", check=False).stdout.split()
        if names:
            self("volume", "rm", "-f", *names, check=False)

    def import_box(self, work: Path) -> None:
        """A busybox rootfs built under ``work``, imported as ``box:1`` with ``sh`` as
        its command: the image benches and module-scoped test roots start from."""
        from dockyard.testing.bundles import make_rootfs_tar

        self("import", "-c", 'CMD ["sh"]', str(make_rootfs_tar(work)), "box:1")


@contextlib.contextmanager
def scratch_root(prefix: str) -> Iterator[tuple[Path, Dockyard]]:
    """A work dir with a dockyard root in it, for a benchmark: on the way out its
    containers and networks are removed and anything still mounted below it is
    detached before the directory goes (never rmtree across a live mount)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    cli = Dockyard(work / "root", work / "docker-config")
    try:
        yield work, cli
    finally:
        cli.remove_everything()
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
