"""The engine's start path and hot commands, timed as whole processes: dockyard against
docker (a private dockerd started here on a bridge of its own, or ``--docker-host``) and
``runc run`` of an equivalent bundle, interleaved (dockyard, docker, docker, dockyard…),
medians of ``--runs`` after one warm-up round, printed as a table with the ratios
dockyard/docker and the issue's goals.  Then "startup of many": ``--many`` ``run -d`` in
a loop and the same again ``--parallel`` at a time, for both engines, with the
per-container memory (USS) and supervisor threads at rest; and the ``DOCKYARD_TRACE=1``
timeline of one ``run --rm`` on each network.  Everything made is removed at the end,
even on Ctrl-C.  Podman is not compared (not installed where this was written).

Usage (as root, with the python of a dockyard venv):
  python bench/run_latency.py [--runs 20] [--many 100] [--parallel 8]
                              [--docker-host unix:///…|--no-docker]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from density import docker_footprint, dockyard_footprint
from engines import (
    STOPPABLE,
    CommandFailed,
    Engine,
    Peers,
    engines,
    exit_on_signals,
    print_traces,
)

import dockyard
from dockyard.testing.bundles import BundleFactory, base_config


@dataclass
class Targets:
    """One engine's standing containers: one running (exec, inspect), one to start and
    stop, and the last ``run -d`` (removed by the ``rm -f`` row)."""

    running: str
    stoppable: str
    detached: str = ""


def _run_rm_none(e: Engine, t: Targets) -> float:
    return e.timed("run", "--rm", "--network", "none", e.image, "/bin/true")[0]


def _run_rm_bridge(e: Engine, t: Targets) -> float:
    return e.timed("run", "--rm", e.image, "/bin/true")[0]


def _run_d(e: Engine, t: Targets) -> float:
    elapsed, t.detached = e.new_container("run", "-d", e.image, "sleep", "3600")
    return elapsed


def _rm_f(e: Engine, t: Targets) -> float:
    return e.remove(t.detached)[0]


@dataclass
class Row:
    label: str
    goal: float | None  # dockyard/docker ratio the issue asks for
    measure: Callable[[Engine, Targets], float]


ROWS = (
    Row("run --rm (none)", 0.25, _run_rm_none),
    Row("run --rm (bridge)", 0.25, _run_rm_bridge),
    Row("run -d (bridge)", 0.25, _run_d),
    Row("rm -f (running)", 0.3, _rm_f),
    Row("start", None, lambda e, t: e.timed("start", t.stoppable)[0]),
    Row("stop", None, lambda e, t: e.timed("stop", t.stoppable)[0]),
    Row("exec /bin/true", None, lambda e, t: e.timed("exec", t.running, "/bin/true")[0]),
    Row("ps", 1.5, lambda e, t: e.timed("ps")[0]),
    Row("images", 1.5, lambda e, t: e.timed("images")[0]),
    Row("inspect", 1.5, lambda e, t: e.timed("inspect", t.running)[0]),
)


@dataclass
class Runc:
    """``runc run`` of a /bin/true bundle: the floor for ``run --rm (none)``."""

    binary: str
    root: Path
    bundle: Path
    times: list[float] = field(default_factory=list)

    def measure(self) -> None:
        argv = [self.binary, "--root", str(self.root), "run", "--bundle", str(self.bundle),
                f"b{uuid.uuid4().hex[:8]}"]
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.times.append(time.perf_counter() - start)


def measure_rows(order: list[Engine], runs: int, runc: Runc | None
                 ) -> dict[str, dict[str, list[float]]]:
    """Every row for every engine, round after round; within a row the engines take
    turns (the first of one round goes last in the next).  Round 0 warms up."""
    targets = {}
    for engine in order:
        running = engine.new_container("run", "-d", engine.image, "sleep", "3600")[1]
        stoppable = engine.new_container("create", engine.image, *STOPPABLE)[1]
        targets[engine.name] = Targets(running, stoppable)
    times: dict[str, dict[str, list[float]]] = {r.label: {} for r in ROWS}
    for round_ in range(runs + 1):
        turn = order if round_ % 2 == 0 else order[::-1]
        for row in ROWS:
            for engine in turn:
                elapsed = row.measure(engine, targets[engine.name])
                if round_:
                    times[row.label].setdefault(engine.name, []).append(elapsed)
            if runc is not None and row is ROWS[0]:
                runc.measure()
                if not round_:
                    runc.times.clear()
    return times


def _ms(values: Sequence[float]) -> str:
    """Median (interquartile range) in ms."""
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return f"{q[1] * 1000:6.1f} ({q[0] * 1000:.0f}-{q[2] * 1000:.0f})"


def print_rows(times: dict[str, dict[str, list[float]]], runc: Runc | None, runs: int) -> None:
    print(f"\nper command, whole process, median (IQR) ms of {runs} interleaved runs")
    print(f"{'command':20} {'dockyard':>17} {'docker':>17} {'dy/docker':>9} {'goal':>6}"
          f" {'runc':>17} {'dy/runc':>7}")
    for row in ROWS:
        got = times[row.label]
        ours = statistics.median(got["dockyard"])
        line = f"{row.label:20} {_ms(got['dockyard']):>17}"
        if "docker" in got:
            ratio = ours / statistics.median(got["docker"])
            line += f" {_ms(got['docker']):>17} {ratio:9.2f}"
        else:
            line += f" {'-':>17} {'-':>9}"
        line += f" {'<=' + format(row.goal, 'g') if row.goal else '-':>6}"
        if runc is not None and row is ROWS[0]:
            line += f" {_ms(runc.times):>17} {ours / statistics.median(runc.times):7.2f}"
        print(line)


@dataclass
class Burst:
    wall: float
    started: int

    def cell(self) -> str:
        return f"{self.wall:6.1f} s {self.started / self.wall:5.1f}/s"


def start_many(engine: Engine, count: int, parallel: int, budget: float
               ) -> tuple[Burst, list[str]]:
    """``count`` ``run -d``, ``parallel`` at a time; none is begun after ``budget`` s."""
    deadline = time.monotonic() + budget

    def one(_: int) -> str | None:
        if time.monotonic() > deadline:
            return None
        return engine.new_container("run", "-d", engine.image, "sleep", "3600")[1]

    start = time.perf_counter()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=parallel)
    try:
        futures = [pool.submit(one, i) for i in range(count)]
        ids = [i for i in (f.result() for f in futures) if i is not None]
    finally:  # interrupted: start nothing more; what did start is in engine.made
        pool.shutdown(wait=True, cancel_futures=True)
    return Burst(time.perf_counter() - start, len(ids)), ids


def many(peers: Peers, count: int, parallel: int, budget: float) -> None:
    engines_ = [e for e in (peers.dockyard, peers.docker) if e is not None]
    cells: dict[str, dict[str, Burst]] = {}
    notes = []
    for label, width in (("loop (1 at a time)", 1), (f"parallel ({parallel} at a time)",
                                                       parallel)):
        for engine in engines_:
            burst, ids = start_many(engine, count, width, budget)
            cells.setdefault(label, {})[engine.name] = burst
            if width == 1:
                time.sleep(1.0)  # at rest
                found = (dockyard_footprint(peers.root, ids) if engine is peers.dockyard
                         else docker_footprint(engine, ids))
                notes.append(f"  {found.line()} — {len(ids)} running, default bridge")
            start = time.perf_counter()
            engine.remove(*ids)
            cells.setdefault(f"rm -f of all ({len(ids)} ids, 1 cmd)", {})[engine.name] = \
                Burst(time.perf_counter() - start, len(ids))
    print(f"\nstartup of many: {count} `run -d … sleep 3600` on the default bridge "
          f"(rate = containers/s; budget {budget:g} s per burst)")
    print(f"{'':34} {'dockyard':>17} {'docker':>17} {'rate dy/docker':>14}")
    for label, by in cells.items():
        line = f"{label:34} {by['dockyard'].cell():>17}"
        if "docker" in by:
            ours, theirs = by["dockyard"], by["docker"]
            speedup = (ours.started / ours.wall) / (theirs.started / theirs.wall)
            line += f" {theirs.cell():>17} {speedup:14.2f}"
        print(line)
    print("goal: parallel rate >= 3x docker's\nmemory per running container, at rest:")
    print("\n".join(notes))


def describe_setup() -> None:
    where = Path(dockyard.__file__).resolve().parent
    kind = "non-editable" if "site-packages" in where.parts else "editable"
    print(f"dockyard from {where} ({kind} install), python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--docker-host", default=None, help="an existing dockerd instead")
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--many", type=int, default=100, help="0: skip startup of many")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--budget", type=float, default=120.0,
                        help="seconds per startup-of-many burst, at most")
    args = parser.parse_args()
    exit_on_signals()
    # measure as a user would: a shell that sets this makes every command recompile
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    describe_setup()
    docker = "none" if args.no_docker else (args.docker_host or "private")
    with engines("dy-runbench-", docker) as peers:
        order = [e for e in (peers.dockyard, peers.docker) if e is not None]
        runc_binary = shutil.which("runc")
        runc = None
        if runc_binary:
            bundle = BundleFactory(peers.work).make(base_config(["/bin/true"]))
            runc = Runc(runc_binary, peers.work / "runc", bundle)
        try:
            times = measure_rows(order, args.runs, runc)
            print_rows(times, runc, args.runs)
            if args.many:
                many(peers, args.many, args.parallel, args.budget)
            print_traces(peers.dockyard)
        except CommandFailed as error:
            print(f"failed: {error}", file=sys.stderr)
            return 1
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}; podman: "
          f"{'installed, not compared' if shutil.which('podman') else 'not installed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
