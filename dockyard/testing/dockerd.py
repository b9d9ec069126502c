"""A private dockerd for differential tests and benchmarks (Debian's docker.io).

The daemon gets data, exec and socket paths of its own under a short temp dir (the
containerd socket path must fit in sun_path), a bridge of its own (``dyd-…`` on a
private /24 no route uses, made here and deleted afterwards: dockerd told
``--bridge=none`` deletes the host's ``docker0``), no iptables rules and no
forwarding sysctl, so it touches nothing of the host's; it is stopped by its pid,
and the cgroup parents and mounts it made are removed afterwards.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
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


# Private /24s for the daemons' bridges come from here (clear of dockyard's 10.213-215,
# Docker's 172.17-31 and Podman's 10.88), skipping any subnet a route already covers.
BRIDGE_POOL = ipaddress.IPv4Network("10.217.0.0/16")


def _routed_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination in any routing table (the default route aside)."""
    out = subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"],
                         capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        words = line.split()
        if words and words[0] in ("local", "broadcast", "unicast", "multicast", "anycast",
                                  "blackhole", "unreachable", "prohibit", "throw", "nat"):
            words = words[1:]
        if words and words[0] != "default":
            with contextlib.suppress(ValueError):
                found.append(ipaddress.IPv4Network(words[0], strict=False))
    return found


def free_subnet(taken: list[ipaddress.IPv4Network] | None = None,
                pool: ipaddress.IPv4Network = BRIDGE_POOL) -> ipaddress.IPv4Network:
    """A /24 of ``pool`` overlapping no routed network, from a random starting point
    (two daemons started at once rarely pick the same)."""
    taken = _routed_networks() if taken is None else taken
    subnets = list(pool.subnets(new_prefix=24))
    start = int.from_bytes(os.urandom(2), "big") % len(subnets)
    for subnet in subnets[start:] + subnets[:start]:
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise RuntimeError(f"no free /24 left in {pool}")


@contextlib.contextmanager
def own_bridge() -> Iterator[str]:
    """A bridge made for one daemon (``dyd-`` and 8 hex digits, an address on a free
    private /24, up); deleted afterwards, it and nothing else."""
    name = f"dyd-{uuid.uuid4().hex[:8]}"
    subnet = free_subnet()
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{subnet[1]}/{subnet.prefixlen}", "dev", name],
                       check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "delete", name, "type", "bridge"], check=False)


@contextlib.contextmanager
def running_dockerd(*extra_args: str, bridge: str | None = None) -> Iterator[Daemon]:
    """``bridge``: an existing bridge for docker's default network (made and removed by
    the caller); by default one made (and removed) here.  Never ``none``: dockerd
    started with ``--bridge=none`` deletes the host's ``docker0``."""
    if bridge is None:
        with own_bridge() as made, running_dockerd(*extra_args, bridge=made) as daemon:
            yield daemon
        return
    if bridge == "none":
        raise ValueError("--bridge=none makes dockerd delete the host's docker0")
    assert DOCKERD is not None
    base = Path(tempfile.mkdtemp(prefix="dy-docker-", dir="/tmp"))
    cgroup_parents = set(Path("/sys/fs/cgroup").glob("*/docker"))
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        [DOCKERD, "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "docker.pid"), "-H", f"unix://{base}/docker.sock",
         f"--bridge={bridge}", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
         *extra_args],
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
        _remove_what_it_made(daemon)
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


def _remove_what_it_made(daemon: Daemon) -> None:
    """Containers and user networks its clients left (a compose project whose one-off
    container kept its network in use): dockerd does not delete a network's bridge
    when it stops, so it would outlive the daemon on the host."""
    if daemon.process.poll() is not None:
        return
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        left = daemon.docker("ps", "-aq", check=False, timeout=60).stdout.split()
        if left:
            daemon.docker("rm", "-f", "-v", *left, check=False, timeout=120)
        daemon.docker("network", "prune", "-f", check=False, timeout=60)


def _remove_cgroup_tree(path: Path) -> None:
    for sub in sorted(path.rglob("*"), key=lambda p: -len(p.parts)):
        if sub.is_dir():
            with contextlib.suppress(OSError):
                sub.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()
