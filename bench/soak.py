"""Soak: N containers with ``--restart always`` that keep failing, for M minutes.

Most run ``sh -c 'sleep $((RANDOM%3)); exit 1'`` (a flapping container: Docker's
back-off doubles from 100 ms to a minute); every fifth runs 11 s before it fails
(long enough that Docker resets the back-off to 100 ms).  Every ``--interval``
seconds the open descriptors and RSS of each container's supervisor and of the
zygote are sampled, ``ps -a`` is run, and each container's status is read; a
watcher polls the status files every 20 ms to time each restart: the wait between
an exit and the next start, against the delay the supervisor chose and against
Docker's schedule (moby's restart manager) computed here from what was observed.
At the end ``system check`` must be clean, everything is removed, and what the run
left on the host is listed (mounts, cgroups, links, chains, processes: none
allowed; ``dockyard.testing.leaks``).  Ctrl-C stops early and still cleans up.

Usage (as root): python bench/soak.py [--containers 10] [--minutes 2] [--interval 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.testing import leaks
from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import Dockyard, scratch_root

FLAP = "sleep $((RANDOM%3)); exit 1"
LONG = "sleep 11; exit 1"
# Docker's schedule (moby restartmanager): 100 ms, doubling, at most a minute, back
# to 100 ms once a container ran 10 s
FIRST, MAXIMUM, RESET_AFTER = 0.1, 60.0, 10.0


def docker_delay(previous: float, ran_for: float) -> float:
    if ran_for >= RESET_AFTER or previous == 0.0:
        return FIRST
    return min(previous * 2, MAXIMUM)


@dataclass
class Restart:
    ran_for: float  # seconds up before the exit (observed)
    previous: float  # the delay the supervisor chose before (0: none)
    chosen: float  # the delay the supervisor recorded
    docker: float  # Docker's delay after the supervisor's previous one and this run
    waited: float  # observed: exit seen -> next start seen (-1 until seen)


@dataclass
class Watched:
    name: str
    kind: str
    bundle: Path
    restarts: list[Restart] = field(default_factory=list)
    seen_count: int = 0  # restart_count last seen
    seen_start: str = ""  # started_at last seen, and when it was first seen
    start_seen_at: float = 0.0
    exit_seen_at: float = 0.0
    pending: Restart | None = None  # an exit seen, its start not yet
    fds: list[int] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)  # KiB
    supervisors: set[int] = field(default_factory=set)
    count: int = 0  # RestartCount as recorded
    delays: list[float] = field(default_factory=list)  # restart_delays as recorded


def status_of(bundle: Path) -> dict[str, Any]:
    try:
        data = json.loads((bundle / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def watch(containers: list[Watched], stop: threading.Event) -> None:
    """Time every restart seen whole: a start (``started_at`` changes), the exit that
    follows (``restart_count`` goes up by one; the delay chosen is the last of
    ``restart_delays``), the next start.  A restart that came and went between two
    polls is counted, not timed."""
    while not stop.wait(0.02):
        now = time.monotonic()
        for c in containers:
            status = status_of(c.bundle)
            if not status:
                continue
            count = int(status.get("restart_count") or 0)
            started = str(status.get("started_at") or "")
            new_start = bool(started) and started != c.seen_start
            if count != c.seen_count:
                c.pending = None
                if count == c.seen_count + 1 and c.seen_start and not new_start:
                    delays = [float(d) for d in status.get("restart_delays") or [0.0]]
                    previous = delays[-2] if len(delays) > 1 else 0.0
                    ran_for = now - c.start_seen_at
                    c.pending = Restart(ran_for, previous, delays[-1],
                                        docker_delay(previous, ran_for), -1.0)
                    c.exit_seen_at = now
                c.seen_count = count
            if new_start:
                if c.pending is not None:
                    c.pending.waited = now - c.exit_seen_at
                    c.restarts.append(c.pending)
                    c.pending = None
                c.seen_start, c.start_seen_at = started, now


def proc_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def proc_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def processes_of(root: Path) -> list[int]:
    """Every process working on ``root``: zygote, supervisors, exit hooks."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and
            any(str(root) in arg for arg in cmdline(int(p)))]


def zygotes(root: Path) -> list[int]:
    """The zygote serving ``root`` (its supervisors share its command line but are
    its children)."""
    run_dir = str(root / "run")
    mine = [int(p) for p in os.listdir("/proc") if p.isdigit() and run_dir in cmdline(int(p))
            and "dockyard.supervise.zygote" in cmdline(int(p))]
    parents = {}
    for pid in mine:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                parents[pid] = int(handle.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    return [pid for pid, parent in parents.items() if parent not in mine]


def sample(cli: Dockyard, containers: list[Watched], zygote: dict[str, list[int]]) -> str:
    for c in containers:
        status = status_of(c.bundle)
        c.count = int(status.get("restart_count") or 0)
        c.delays = [float(d) for d in status.get("restart_delays") or []]
        pid = int(status.get("supervisor_pid") or 0)
        fds, rss = proc_fds(pid), proc_rss_kib(pid)
        if pid and fds is not None and rss is not None:
            c.supervisors.add(pid)
            c.fds.append(fds)
            c.rss.append(rss)
    for pid in zygotes(cli.root):
        fds, rss = proc_fds(pid), proc_rss_kib(pid)
        if fds is not None and rss is not None:
            zygote["pid"].append(pid)
            zygote["fds"].append(fds)
            zygote["rss"].append(rss)
    listed = cli("ps", "-a", check=False)
    return "" if listed.returncode == 0 else listed.stderr.strip()


def first_last(values: list[int]) -> str:
    return f"{values[0]}->{values[-1]} (max {max(values)})" if values else "-"


def mib(values: list[int]) -> list[int]:
    return [round(v / 1024) for v in values]


def report(containers: list[Watched], zygote: dict[str, list[int]], minutes: float,
           ps_errors: list[str]) -> None:
    print(f"\n{'container':<10} {'kind':<5} {'restarts':>8} {'sup':>3} "
          f"{'fds first->last (max)':<22} {'RSS MiB first->last':<22} "
          f"{'last delays chosen (s)':<40}")
    for c in containers:
        chosen = " ".join(f"{d:g}" for d in c.delays[-8:])
        print(f"{c.name:<10} {c.kind:<5} {c.count:>8} {len(c.supervisors):>3} "
              f"{first_last(c.fds):<22} {first_last(mib(c.rss)):<22} {chosen:<40}")
    print(f"{'zygote':<10} {'':<5} {'':>8} {len(set(zygote['pid'])):>3} "
          f"{first_last(zygote['fds']):<22} {first_last(mib(zygote['rss'])):<22}")
    timed = [r for c in containers for r in c.restarts if r.waited >= 0]
    off_schedule = [r for r in timed if abs(r.chosen - r.docker) > 1e-9]
    early = [r for r in timed if r.waited < r.chosen - 0.05]  # (20 ms polls)
    over = [r.waited - r.chosen for r in timed]
    after_long = [r for r in timed if r.ran_for >= RESET_AFTER and r.previous > 0]
    resets = sum(1 for r in after_long if r.chosen == FIRST)
    total = sum(c.count for c in containers)
    print(f"\n{total} restarts in {minutes:.1f} min; {len(timed)} timed from exit to start")
    if over:
        print(f"back-off: chosen delay = Docker's schedule in {len(timed) - len(off_schedule)}"
              f"/{len(timed)}; started before its delay: {len(early)}; wait beyond the "
              f"delay (restart cost): median {statistics.median(over) * 1000:.0f} ms, "
              f"max {max(over) * 1000:.0f} ms")
        print(f"reset after >=10 s up: {resets}/{len(after_long)} restarts that followed "
              f"a run of 10 s or more (and an earlier restart) waited 100 ms again")
        longest = max(timed, key=lambda r: r.chosen)
        print(f"longest delay chosen: {longest.chosen:g} s (Docker's: {longest.docker:g} s), "
              f"waited {longest.waited:.2f} s")
    for r in off_schedule[:5]:
        print(f"  off Docker's schedule: ran {r.ran_for:.2f} s, chose {r.chosen:g} s, "
              f"Docker {r.docker:g} s")
    print(f"ps -a failures: {len(ps_errors)}" + (f" (first: {ps_errors[0]})"
                                                 if ps_errors else ""))


def ours(report: dict[str, list[str]], work: Path, ids: list[str]) -> dict[str, list[str]]:
    """The part of a host-wide leak report that this run made (tests running beside
    it come and go too)."""
    marks = [str(work), *(f"-{i[:24]}" for i in ids)]  # cgroups: dockyard-<tag>-<id24>
    found = {}
    for kind, items in report.items():
        mine = [item for item in items if any(mark in item for mark in marks)]
        if mine:
            found[kind] = mine
    return found


def _interrupt(*_: object) -> None:
    """A TERM ends the soak as Ctrl-C does: through the clean-up."""
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    before = leaks.snapshot()
    ids: list[str] = []
    stop = threading.Event()
    containers: list[Watched] = []
    zygote: dict[str, list[int]] = {"pid": [], "fds": [], "rss": []}
    ps_errors: list[str] = []
    started = time.monotonic()
    check = ""
    work = Path("/nonexistent")
    interrupted = False
    try:
        with scratch_root("dy-soak-") as (work, cli):
            cli("import", "-c", 'CMD ["sh"]', str(make_rootfs_tar(work)), "soak:1")
            for i in range(args.containers):
                kind = "long" if i % 5 == 4 else "flap"
                name = f"soak{i}"
                cid = cli("run", "-d", "--name", name, "--network", "none", "--restart",
                          "always", "soak:1", "sh", "-c", LONG if kind == "long" else FLAP
                          ).stdout.strip()
                ids.append(cid)
                containers.append(Watched(name, kind, cli.root / "containers" / cid))
            watcher = threading.Thread(target=watch, args=(containers, stop), daemon=True)
            watcher.start()
            try:
                deadline = started + args.minutes * 60
                while time.monotonic() < deadline:
                    error = sample(cli, containers, zygote)
                    if error:
                        ps_errors.append(error)
                    elapsed = time.monotonic() - started
                    print(f"[{elapsed:6.0f} s] restarts "
                          f"{sum(c.count for c in containers):4d}, supervisor fds "
                          f"{sum(c.fds[-1] for c in containers if c.fds)}, zygote fds "
                          f"{zygote['fds'][-1] if zygote['fds'] else '-'}", flush=True)
                    time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
            except KeyboardInterrupt:
                interrupted = True
                print("\ninterrupted: cleaning up", flush=True)
            finally:
                stop.set()
                watcher.join()
            check = cli("system", "check", check=False).stdout.strip()
            # removed here, and their exit hooks waited for: a hook still running once
            # the work dir is gone would make the root again
            cli.remove_everything()
            quiet_by = time.monotonic() + 30
            while processes_of(cli.root) and time.monotonic() < quiet_by:
                time.sleep(0.05)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: cleaning up", flush=True)
    minutes = (time.monotonic() - started) / 60
    if containers:
        report(containers, zygote, minutes, ps_errors)
    print(f"system check before clean-up: {check or '-'}")
    left = leaks.leaked(before)  # waits a few seconds for daemons still exiting
    mine = ours(left, work, ids)
    print("left on the host by this run: " + (json.dumps(mine) if mine else "nothing"))
    others = sum(len(v) for k, v in left.items()) - sum(len(v) for v in mine.values())
    if others:
        print(f"({others} other changes on the host meanwhile, not this run's)")
    ok = not mine and check == "ok: store consistent" and not ps_errors
    return 130 if interrupted else (0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
