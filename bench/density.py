"""Start N sleeping containers; report the start rate and the memory dockyard keeps per
running container (the unique memory — USS, from /proc/PID/smaps_rollup — of every
supervisor process), then remove them all.  With ``--docker-host``, the same against
that dockerd: its per-container process is containerd's shim.

Usage (as root): python bench/density.py [--count 100] [--docker-host unix:///…]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import scratch_root


def uss_kib(pid: int) -> int:
    """Private (unique) memory of a process: Private_Clean + Private_Dirty."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--docker-host", default=None)
    args = parser.parse_args()
    with scratch_root("dy-density-") as (work, cli):
        root = cli.root

        def dy(*argv: str) -> str:
            return cli(*argv).stdout

        tar = make_rootfs_tar(work)
        dy("import", str(tar), "density:1")
        start = time.perf_counter()
        ids = [dy("run", "-d", "density:1", "sleep", "3600").strip() for _ in range(args.count)]
        elapsed = time.perf_counter() - start
        supervisors = []
        for container_id in ids:
            status = json.loads((root / "containers" / container_id / "status.json").read_text())
            supervisors.append(int(status["supervisor_pid"]))
        per = [uss_kib(pid) for pid in supervisors]
        print(f"started {args.count} containers in {elapsed:.1f} s "
              f"({args.count / elapsed:.1f} containers/s)")
        print(f"per-container supervisor USS: median {statistics.median(per) / 1024:.2f} MiB, "
              f"max {max(per) / 1024:.2f} MiB (target <= 3 MiB)")
        dy("rm", "-f", *ids)
        if args.docker_host:
            _docker(args.count, args.docker_host, tar)
    return 0


def _docker(count: int, host: str, tar: Path) -> None:
    import os

    env = dict(os.environ, DOCKER_HOST=host)

    def docker(*argv: str) -> str:
        return subprocess.run(["docker", *argv], env=env, check=True, capture_output=True,
                              text=True).stdout

    docker("import", str(tar), "density:1")
    start = time.perf_counter()
    ids = [docker("run", "-d", "--network", "none", "density:1", "sleep", "3600").strip()
           for _ in range(count)]
    elapsed = time.perf_counter() - start
    shims = [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and
             _comm(int(pid)).startswith("containerd-shim")]
    per = [uss_kib(pid) for pid in shims]
    print(f"docker: started {count} containers in {elapsed:.1f} s ({count / elapsed:.1f}/s); "
          f"{len(shims)} shims, USS median {statistics.median(per) / 1024:.2f} MiB")
    docker("rm", "-f", *ids)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
