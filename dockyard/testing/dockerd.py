"""A private dockerd for differential tests and benchmarks (Debian's docker.io).

The daemon gets data, exec and socket paths of its own under a short temp dir (the
containerd socket path must fit in sun_path), no bridge and no iptables rules, so
it touches nothing of the host's; it is stopped by its pid, and the cgroup
parents and mounts it made are removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from dockyard.testing.cli import run_captured, unmount_under

DOCKERD = shutil.which("dockerd")
DOCKER = shutil.which("docker")


class Daemon:
    def __init__(self, base: Path, process: subprocess.Popen[bytes]) -> None:
        self.base = base
        self.process = process
        self.host = f"unix://{base}/docker.sock"
        self.env = dict(os.environ, DOCKER_HOST=self.host)

    def docker(self, *args: str, check: bool = True, stdin: bytes | None = None,
               env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
        assert DOCKER is not None
        return run_captured([DOCKER, *args], env={**self.env, **(env or {})}, input=stdin,
                            timeout=timeout, check=check)


    def docker_bytes(self, *args: str) -> bytes:
        """A docker command's raw stdout (export, save)."""
        assert DOCKER is not None
        return subprocess.run([DOCKER, *args], env=self.env, capture_output=True, check=True,
                              timeout=300).stdout


def available() -> bool:
    return DOCKERD is not None and DOCKER is not None


@contextlib.contextmanager
def running_dockerd(*extra_args: str, bridge: str = "none") -> Iterator[Daemon]:
    """``bridge``: an existing bridge for docker's default network (made and removed by
    the caller), or none."""
    assert DOCKERD is not None
    base = Path(tempfile.mkdtemp(prefix="dy-docker-", dir="/tmp"))
    cgroup_parents = set(Path("/sys/fs/cgroup").glob("*/docker"))
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        [DOCKERD, "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "docker.pid"), "-H", f"unix://{base}/docker.sock",
         f"--bridge={bridge}", "--iptables=false", "--ip-masq=false", *extra_args],
        stdout=log, stderr=subprocess.STDOUT)
    daemon = Daemon(base, process)
    try:
        deadline = time.monotonic() + 60
        while daemon.docker("version", check=False).returncode != 0:
            if process.poll() is not None:
                raise RuntimeError("dockerd exited: " +
                                   (base / "dockerd.log").read_text()[-2000:])
            if time.monotonic() > deadline:
                raise RuntimeError("dockerd did not come up within 60 s")
            time.sleep(0.2)
        yield daemon
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        for parent in set(Path("/sys/fs/cgroup").glob("*/docker")) - cgroup_parents:
            _remove_cgroup_tree(parent)
        unmount_under(base)  # dockerd bind-mounts its data root (and may leave it)
        shutil.rmtree(base, ignore_errors=True)


def _remove_cgroup_tree(path: Path) -> None:
    for sub in sorted(path.rglob("*"), key=lambda p: -len(p.parts)):
        if sub.is_dir():
            with contextlib.suppress(OSError):
                sub.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()
