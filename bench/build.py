"""``dockyard build`` against ``docker build`` of the same 10-instruction Dockerfile
(COPY of a few MB plus busybox RUN steps): cold (``--no-cache``) and fully cached,
interleaved, medians and ratios (dockyard / docker).

docker runs in a private dockerd started here (overlay2, no bridge, no iptables);
Debian's docker.io has no buildx, so its builder is the classic one.

Usage (as root): python bench/build.py [--runs 5] [--data-mb 4] [--no-docker]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dockyard.testing import dockerd
from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import scratch_root

DOCKERFILE = """FROM box:1
ENV APP=/app MODE=bench
WORKDIR /app
COPY data/ ./data/
RUN ls data | wc -l > count.txt
RUN sha256sum data/* > sums.txt
COPY script.sh ./
RUN sh script.sh > script.out
EXPOSE 8080
CMD ["cat", "sums.txt"]
"""


def _context(work: Path, data_mb: int) -> Path:
    context = work / "context"
    (context / "data").mkdir(parents=True)
    for index in range(8):
        (context / "data" / f"blob{index}.bin").write_bytes(os.urandom(data_mb * 2**20 // 8))
    (context / "script.sh").write_text("for i in 1 2 3; do echo step $i; done\nuname -a\n")
    (context / "Dockerfile").write_text(DOCKERFILE)
    return context


def _time(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-mb", type=int, default=4)
    parser.add_argument("--no-docker", action="store_true")
    args = parser.parse_args()
    dockyard = str(Path(sys.executable).with_name("dockyard"))
    results: dict[str, list[float]] = {"dockyard cold": [], "dockyard cached": [],
                                       "docker cold": [], "docker cached": []}
    with scratch_root("dy-buildbench-") as (work, cli):
        root = cli.root
        tar = make_rootfs_tar(work)
        context = _context(work, args.data_mb)
        subprocess.run([dockyard, "--root", str(root), "import", "-c", 'CMD ["sh"]', str(tar),
                        "box:1"], check=True, stdout=subprocess.DEVNULL)
        build = [dockyard, "--root", str(root), "build", "-q", "-t", "bench:1"]
        with contextlib.ExitStack() as stack:
            daemon = None
            if not args.no_docker and dockerd.available():
                daemon = stack.enter_context(
                    dockerd.running_dockerd("--storage-driver=overlay2"))
                daemon.docker("import", "-c", 'CMD ["sh"]', "-", "box:1",
                              stdin=tar.read_bytes())
            docker_env = dict(daemon.env, DOCKER_BUILDKIT="0") if daemon else None
            docker_build = ["docker", "build", "-q", "-t", "bench:1"]
            for _ in range(args.runs):
                results["dockyard cold"].append(_time([*build, "--no-cache", str(context)]))
                results["dockyard cached"].append(_time([*build, str(context)]))
                if daemon:
                    results["docker cold"].append(
                        _time([*docker_build, "--no-cache", str(context)], docker_env))
                    results["docker cached"].append(
                        _time([*docker_build, str(context)], docker_env))
    medians = {name: statistics.median(times) for name, times in results.items() if times}
    for name, value in medians.items():
        print(f"{name:16} median {value * 1000:8.1f} ms  ({len(results[name])} runs)")
    for kind in ("cold", "cached"):
        if f"docker {kind}" in medians:
            ratio = medians[f"dockyard {kind}"] / medians[f"docker {kind}"]
            print(f"ratio {kind} (dockyard / docker): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
