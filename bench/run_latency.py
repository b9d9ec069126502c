"""``dockyard run --rm --network none IMG /bin/true`` against ``runc run`` of an
equivalent bundle (and ``docker run --rm --network none`` when a dockerd socket is
given), medians and ratios.  ``--network bridge`` adds the cost of a veth pair.

Usage (as root): python bench/run_latency.py [--runs 20] [--docker-host unix:///…]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from dockyard.testing.bundles import BundleFactory, base_config, make_rootfs_tar
from dockyard.testing.cli import scratch_root


def _time(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                   env=env)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--docker-host", default=None)
    args = parser.parse_args()
    runc = shutil.which("runc")
    dockyard = str(Path(sys.executable).with_name("dockyard"))
    with scratch_root("dy-runbench-") as (work, cli):
        root = cli.root
        tar = make_rootfs_tar(work)
        subprocess.run([dockyard, "--root", str(root), "import", str(tar), "bench:1"],
                       check=True, stdout=subprocess.DEVNULL)
        bundle = BundleFactory(work).make(base_config(["/bin/true"]))
        results: dict[str, list[float]] = {"dockyard run --rm": [], "runc run": []}
        for _ in range(args.runs):
            results["dockyard run --rm"].append(_time(
                [dockyard, "--root", str(root), "run", "--rm", "--network", "none", "bench:1",
                 "/bin/true"]))
            if runc:
                results["runc run"].append(_time(
                    [runc, "--root", str(work / "runc"), "run", "--bundle", str(bundle),
                     f"b{uuid.uuid4().hex[:8]}"]))
        if args.docker_host:
            import os

            env = dict(os.environ, DOCKER_HOST=args.docker_host)
            subprocess.run(["docker", "import", str(tar), "bench:1"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            results["docker run --rm"] = [
                _time(["docker", "run", "--rm", "--network", "none", "bench:1", "/bin/true"],
                      env) for _ in range(args.runs)]
    medians = {k: statistics.median(v) * 1000 for k, v in results.items() if v}
    for name, value in medians.items():
        print(f"{name:20} median {value:7.1f} ms over {args.runs} runs")
    ours = medians["dockyard run --rm"]
    for peer, target in (("runc run", 2.0), ("docker run --rm", 0.2)):
        if peer in medians:
            print(f"ratio dockyard/{peer}: {ours / medians[peer]:.2f} (target <= {target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
