"""Container start latency of the runtime alone: dockyard-runtime vs runc on the same
/bin/true bundle, without and with Docker's default seccomp profile.

For each variant both runtimes take turns (the first of one round goes last in the
next) after one warm-up each: ``run`` (create, start, wait, delete in one command),
then ``create`` and ``start`` as two commands (and, once the container has exited,
``delete``, timed apart).  Medians (interquartile range) of N runs and the ratios
dockyard-runtime / runc (below 1.0 means faster).  dockyard-runtime keeps compiled
seccomp programs in its state root, so after the warm-up it loads a cached one; runc
compiles the profile with libseccomp every time: that is each runtime as shipped.
At the end, the ``DOCKYARD_TRACE=1`` timeline of one ``dockyard run --rm``.

Usage (as root): python bench/runtime_start.py [--runs 20] [--seccomp|--no-seccomp]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from engines import engines, exit_on_signals, print_traces

from dockyard.runtime.linux.capabilities import DOCKER_DEFAULT_CAPABILITIES
from dockyard.runtime.seccomp_profile import default_profile
from dockyard.testing.bundles import BundleFactory, base_config

OPS = ("run", "create+start", "  create", "  start", "delete (exited)")


def _timed(argv: list[str]) -> float:
    """One runtime command; every stdio off a pipe (a created container inherits them).
    Waited for with a blocking wait: ``subprocess.run(timeout=…)`` polls with doubling
    sleeps, which rounded every time up to ~16, 32 or 64 ms."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    code = process.wait()
    elapsed = time.perf_counter() - start
    if code != 0:
        raise subprocess.CalledProcessError(code, argv)
    return elapsed


def _wait_stopped(argv: list[str], cid: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run([*argv, "state", cid], capture_output=True, check=False).stdout
        if out and json.loads(out).get("status") == "stopped":
            return
        time.sleep(0.005)
    raise RuntimeError(f"{cid} did not stop within 10 s")


def one_round(argv: list[str], bundle: Path) -> dict[str, float]:
    """``run``, then ``create``+``start``+``delete`` of the same bundle."""
    got = {"run": _timed([*argv, "run", "--bundle", str(bundle), f"r-{uuid.uuid4().hex[:8]}"])}
    cid = f"c-{uuid.uuid4().hex[:8]}"
    got["  create"] = _timed([*argv, "create", "--bundle", str(bundle), cid])
    got["  start"] = _timed([*argv, "start", cid])
    got["create+start"] = got["  create"] + got["  start"]
    _wait_stopped(argv, cid)
    got["delete (exited)"] = _timed([*argv, "delete", cid])
    return got


def delete_all(argv: list[str]) -> None:
    listed = subprocess.run([*argv, "list", "-q"], capture_output=True, text=True,
                            check=False).stdout
    for cid in listed.split():
        subprocess.run([*argv, "delete", "-f", cid], capture_output=True, check=False)


def measure(runtimes: dict[str, list[str]], bundle: Path, runs: int
            ) -> dict[str, dict[str, list[float]]]:
    names = list(runtimes)
    for name in names:
        one_round(runtimes[name], bundle)  # warm-up: page cache, seccomp cache
    times: dict[str, dict[str, list[float]]] = {op: {n: [] for n in names} for op in OPS}
    for round_ in range(runs):
        for name in names if round_ % 2 == 0 else names[::-1]:
            for op, value in one_round(runtimes[name], bundle).items():
                times[op][name].append(value)
    return times


def _ms(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4)
    return f"{q[1] * 1000:6.1f} ({q[0] * 1000:.1f}-{q[2] * 1000:.1f})"


def print_table(variant: str, times: dict[str, dict[str, list[float]]]) -> None:
    for op in OPS:
        ours, runc = times[op]["dockyard-runtime"], times[op]["runc"]
        ratio = statistics.median(ours) / statistics.median(runc)
        goal = "<=1.0" if op in ("run", "create+start") else "-"
        print(f"{variant:12} {op:16} {_ms(ours):>21} {_ms(runc):>21} {ratio:6.2f} {goal:>6}")


def config_for(seccomp: bool) -> dict[str, Any]:
    config = base_config(["/bin/true"])
    if seccomp:
        config["linux"]["seccomp"] = default_profile(DOCKER_DEFAULT_CAPABILITIES)
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--seccomp", action="store_true",
                       help="only with Docker's default seccomp profile (in both)")
    which.add_argument("--no-seccomp", action="store_true", help="only without seccomp")
    parser.add_argument("--no-trace", action="store_true",
                        help="skip the closing DOCKYARD_TRACE timeline of dockyard run --rm")
    args = parser.parse_args()
    exit_on_signals()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user runs it
    runc = shutil.which("runc")
    ours = Path(sys.executable).with_name("dockyard-runtime")
    if runc is None or not ours.exists():
        print("needs runc and dockyard-runtime installed", file=sys.stderr)
        return 1
    variants = [v for v in (False, True)
                if not (args.seccomp and not v) and not (args.no_seccomp and v)]
    print(f"median (IQR) ms of {args.runs} interleaved runs of a /bin/true bundle; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'variant':12} {'command':16} {'dockyard-runtime':>21} {'runc':>21} {'ratio':>6}"
          f" {'goal':>6}")
    with tempfile.TemporaryDirectory(prefix="dy-rtbench-") as tmp:
        work = Path(tmp)
        factory = BundleFactory(work)
        made: list[list[str]] = []
        try:
            for seccomp in variants:
                bundle = factory.make(config_for(seccomp))
                tag = "seccomp" if seccomp else "no seccomp"
                runtimes = {"dockyard-runtime": [str(ours), "--root", str(work / f"d-{tag}")],
                            "runc": [runc, "--root", str(work / f"r-{tag}")]}
                made.extend(runtimes.values())
                print_table(tag, measure(runtimes, bundle, args.runs))
        finally:  # interrupted: what a runtime still has (its cgroup with it)
            for argv in made:
                delete_all(argv)
    floor = [_timed([sys.executable, "-S", "-c", "pass"]) for _ in range(args.runs)]
    with_site = [_timed([sys.executable, "-c", "pass"]) for _ in range(args.runs)]
    print(f"for scale: {sys.executable} -S -c pass, median "
          f"{statistics.median(floor) * 1000:.1f} ms (the floor of any command in Python: "
          f"dockyard-runtime starts with -S), {statistics.median(with_site) * 1000:.1f} ms "
          "with site")
    if not args.no_trace:
        with engines("dy-rtbench-trace-", docker="none") as peers:
            print_traces(peers.dockyard, ("none",))
    return 0


if __name__ == "__main__":
    sys.exit(main())
