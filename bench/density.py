"""Start N sleeping containers on the default bridge (networking on); report the start
rate, the memory dockyard keeps per running container (the unique memory — USS, from
/proc/PID/smaps_rollup — of each container's supervisor) and the supervisors' thread
counts at rest, then remove them all.  The same against docker (a private dockerd on a
bridge made here, or ``--docker-host``): its per-container process is containerd's shim,
found as the parent of each container's PID 1 (other daemons' shims are not counted).

Usage (as root): python bench/density.py [--count 100] [--docker-host unix:///…|--no-docker]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engines import Engine, engines, exit_on_signals


def uss_kib(pid: int) -> int:
    """Private (unique) memory of a process: Private_Clean + Private_Dirty."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


def _status_field(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise KeyError(name)


@dataclass
class Footprint:
    """The per-container processes of one engine: USS (KiB) and thread count of each."""

    what: str
    uss: list[int]
    threads: list[int]

    def line(self) -> str:
        if not self.uss:
            return f"{self.what}: none found"
        return (f"{self.what}: {len(self.uss)} found, USS median "
                f"{statistics.median(self.uss) / 1024:.2f} MiB, max {max(self.uss) / 1024:.2f}"
                f" MiB; threads median {statistics.median(self.threads):g}, "
                f"max {max(self.threads)}")


def _footprint(what: str, pids: list[int]) -> Footprint:
    return Footprint(what, [uss_kib(pid) for pid in pids],
                     [_status_field(pid, "Threads") for pid in pids])


def dockyard_footprint(root: Path, ids: list[str]) -> Footprint:
    """Each container's supervisor, from the pid its status.json records."""
    pids = []
    for container_id in ids:
        status = json.loads((root / "containers" / container_id / "status.json").read_text())
        pids.append(int(status["supervisor_pid"]))
    return _footprint("dockyard supervisors", pids)


def docker_footprint(docker: Engine, ids: list[str]) -> Footprint:
    """Each container's shim: the parent of the container's PID 1."""
    _, out = docker.timed("inspect", "-f", "{{.State.Pid}}", *ids)
    shims = sorted({_status_field(int(pid), "PPid") for pid in out.split() if pid != "0"})
    return _footprint("docker shims (containerd-shim-runc-v2)", shims)


def _start(engine: Engine, count: int) -> tuple[float, list[str]]:
    start = time.perf_counter()
    ids = [engine.new_container("run", "-d", engine.image, "sleep", "3600")[1]
           for _ in range(count)]
    return time.perf_counter() - start, ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--docker-host", default=None)
    parser.add_argument("--no-docker", action="store_true")
    args = parser.parse_args()
    exit_on_signals()
    docker = "none" if args.no_docker else (args.docker_host or "private")
    with engines("dy-density-", docker) as peers:
        for engine in filter(None, (peers.dockyard, peers.docker)):
            elapsed, ids = _start(engine, args.count)
            time.sleep(1.0)  # at rest
            print(f"{engine.name}: started {args.count} containers in {elapsed:.1f} s "
                  f"({args.count / elapsed:.1f} containers/s)")
            if engine is peers.dockyard:
                found = dockyard_footprint(peers.root, ids)
                print(found.line() + " (target: USS <= 3 MiB, no threads beyond the first)")
            else:
                print(docker_footprint(engine, ids).line())
            engine.remove(*ids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
