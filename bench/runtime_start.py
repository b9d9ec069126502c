"""Container start latency: ``run`` of a /bin/true bundle, dockyard-runtime vs runc.

Both runtimes run the same bundle, interleaved, in one process; medians of N runs
each are printed with their ratio (dockyard / runc; below 1.0 means faster).
Usage (as root): python bench/runtime_start.py [--runs 20] [--seccomp]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from dockyard.runtime.linux.capabilities import DOCKER_DEFAULT_CAPABILITIES
from dockyard.runtime.seccomp_profile import default_profile
from dockyard.testing.bundles import BundleFactory, base_config


def time_run(argv: list[str], root: Path, bundle: Path) -> float:
    cid = f"bench-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    subprocess.run([*argv, "--root", str(root), "run", "--bundle", str(bundle), cid],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seccomp", action="store_true",
                        help="apply Docker's default seccomp profile in both")
    args = parser.parse_args()
    runc = shutil.which("runc")
    ours = Path(sys.executable).with_name("dockyard-runtime")
    if runc is None or not ours.exists():
        print("needs runc and dockyard-runtime installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = base_config(["/bin/true"])
        if args.seccomp:
            config["linux"]["seccomp"] = default_profile(DOCKER_DEFAULT_CAPABILITIES)
        bundle = BundleFactory(work).make(config)
        timings: dict[str, list[float]] = {"dockyard-runtime": [], "runc": []}
        for argv, name in (([str(ours)], "dockyard-runtime"), ([runc], "runc")):
            time_run(argv, work / name, bundle)  # warm the page cache
        for _ in range(args.runs):
            timings["dockyard-runtime"].append(time_run([str(ours)], work / "d", bundle))
            timings["runc"].append(time_run([runc], work / "r", bundle))
    medians = {name: statistics.median(values) * 1000 for name, values in timings.items()}
    for name, value in medians.items():
        print(f"{name:18} median {value:7.1f} ms over {args.runs} runs")
    ratio = medians["dockyard-runtime"] / medians["runc"]
    print(f"ratio dockyard-runtime/runc: {ratio:.2f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
