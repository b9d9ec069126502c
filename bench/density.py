"""Start N sleeping containers; report the start rate and the memory dockyard keeps per
running container (the unique memory — USS, from /proc/PID/smaps_rollup — of every
supervisor process), then remove them all.

Usage (as root): python bench/density.py [--count 100]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dockyard.testing.bundles import make_rootfs


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
    args = parser.parse_args()
    dockyard = str(Path(sys.executable).with_name("dockyard"))
    work = Path(tempfile.mkdtemp(prefix="dy-density-"))
    root = work / "root"

    def dy(*argv: str) -> str:
        return subprocess.run([dockyard, "--root", str(root), *argv], check=True,
                              capture_output=True, text=True).stdout

    try:
        rootfs = make_rootfs(work / "rootfs")
        tar = work / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
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
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
