"""The Docker Engine API: the same docker CLI against ``dockyard serve`` and against a
private dockerd (its own bridge; started here), in one run, interleaved, as ratios
(dockyard serve / dockerd) with the issue's goals:

- ``docker run --rm IMG true``                        goal <= 0.5x
- ``docker ps -a`` with 100 containers                goal <= 0.5x
- ``GET /containers/json?all=1`` requests per second  goal >= 2x (100 containers)
- the server's own memory at rest (USS/RSS of ``dockyard serve``; dockerd's beside it)

The 100 containers are created, not started, on both sides (the machine has two
cores: 200 running containers would measure the machine); ``ps -a`` lists them.
Everything made is removed at the end, even on Ctrl-C.

Usage (as root, with the python of a dockyard venv):
  python bench/api.py [--runs 10] [--containers 100] [--requests 200]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from density import uss_kib
from engines import Engine, engines, exit_on_signals

from dockyard.testing import dockerd


@contextlib.contextmanager
def serving(root: Path, work: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``dockyard serve`` on ``root``, on a unix socket in ``work``; stopped by pid."""
    binary = Path(sys.executable).with_name("dockyard")
    sock = work / "api.sock"
    log = open(work / "serve.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([str(binary), "--root", str(root), "serve", "--host",
                                f"unix://{sock}"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"unix://{sock}"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dockyard serve did not start: " +
                                   (work / "serve.log").read_text()[-2000:])
            time.sleep(0.05)
        yield process, f"unix://{sock}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _answers(host: str) -> bool:
    try:
        with _http(host) as client:
            return client.get("/_ping").status_code == 200
    except httpx.HTTPError:
        return False


def _http(host: str) -> httpx.Client:
    transport = httpx.HTTPTransport(uds=host.removeprefix("unix://"))
    return httpx.Client(transport=transport, base_url="http://docker", timeout=120)


def requests_per_second(host: str, count: int) -> float:
    with _http(host) as client:
        client.get("/containers/json?all=1").raise_for_status()  # warm the connection
        start = time.perf_counter()
        for _ in range(count):
            client.get("/containers/json?all=1").raise_for_status()
        return count / (time.perf_counter() - start)


def interleaved(runs: int, serve: Engine, docker: Engine, *args: str) -> tuple[float, float]:
    """Medians of ``runs`` after one warm-up each, alternating which goes first."""
    serve.timed(*args)
    docker.timed(*args)
    ours: list[float] = []
    theirs: list[float] = []
    for number in range(runs):
        order = [(serve, ours), (docker, theirs)]
        for engine, times in order if number % 2 == 0 else reversed(order):
            times.append(engine.timed(*args)[0])
    return statistics.median(ours), statistics.median(theirs)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _row(what: str, ours: float, theirs: float, unit: str, goal: str) -> None:
    ratio = ours / theirs if theirs else float("nan")
    print(f"{what:<44} {ours:>10.1f} {theirs:>10.1f} {unit:<6} {ratio:>7.2f}x  {goal}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    if not dockerd.available():
        print("dockerd is not installed (Debian package docker.io): nothing to compare "
              "against", file=sys.stderr)
        return 2
    exit_on_signals()
    with engines("dyapi-bench") as peers, serving(peers.root, peers.work) as (server, host):
        assert peers.docker is not None and peers.daemon is not None
        docker = peers.docker
        serve = Engine("dockyard serve", list(docker.argv), dict(docker.env, DOCKER_HOST=host),
                       docker.image)
        rest_before = uss_kib(server.pid), _rss_kib(server.pid)
        print(f"docker CLI against dockyard serve ({host}) and a private dockerd "
              f"({peers.daemon.host}); medians of {args.runs}, interleaved; a noisy 2-core "
              "machine: read the ratios, not the absolute times\n")
        print(f"{'':<44} {'serve':>10} {'dockerd':>10} {'':<6} {'ratio':>8}  goal")
        run_ours, run_theirs = interleaved(args.runs, serve, docker, "run", "--rm",
                                           docker.image, "true")
        _row("docker run --rm IMG true", run_ours * 1000, run_theirs * 1000, "ms",
             "<= 0.5x")
        for engine in (serve, docker):
            for _ in range(args.containers):
                engine.new_container("create", engine.image, "true")
        ps_ours, ps_theirs = interleaved(args.runs, serve, docker, "ps", "-a", "-q")
        _row(f"docker ps -a ({args.containers} containers)", ps_ours * 1000, ps_theirs * 1000,
             "ms", "<= 0.5x")
        rates: tuple[list[float], list[float]] = ([], [])
        for _ in range(3):
            rates[0].append(requests_per_second(host, args.requests // 3))
            rates[1].append(requests_per_second(peers.daemon.host, args.requests // 3))
        _row(f"GET /containers/json?all=1 ({args.containers})", statistics.median(rates[0]),
             statistics.median(rates[1]), "req/s", ">= 2x")
        time.sleep(2)
        rest_after = uss_kib(server.pid), _rss_kib(server.pid)
        daemon_rss = _rss_kib(peers.daemon.process.pid)
        print(f"\ndockyard serve memory at rest: USS {rest_before[0] / 1024:.1f} MiB, RSS "
              f"{rest_before[1] / 1024:.1f} MiB when started; USS {rest_after[0] / 1024:.1f} "
              f"MiB, RSS {rest_after[1] / 1024:.1f} MiB after the runs "
              f"(dockerd: RSS {daemon_rss / 1024:.1f} MiB, containerd not counted)")
        serve.remove_made()
        docker.remove_made()
    return 0


if __name__ == "__main__":
    sys.exit(main())
