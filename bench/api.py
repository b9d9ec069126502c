"""The Docker Engine API: the same docker CLI against ``dockyard serve`` and against a
private dockerd (its own bridge; started here), in one run, interleaved, as ratios
(dockyard serve / dockerd) with the issue's goals:

- ``docker run --rm IMG true``                        goal <= 0.5x
- ``docker ps -a`` with 100 containers                goal <= 0.5x
- ``GET /containers/json?all=1`` requests per second  goal >= 2x (100 containers)
  and the server's CPU time per request (dockerd's alone: a list never reaches
  containerd)
- the floor of ``ps``: the same CLI against a stub that answers at once with the
  bytes serve gave — on a loaded machine the docker CLI's own start costs more than
  a list in dockerd, so no server can reach 0.5x there
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
    ours, theirs = interleaved_all(runs, [serve, docker], *args)
    return ours, theirs


def interleaved_all(runs: int, peers: list[Engine], *args: str) -> list[float]:
    """``interleaved`` of any number of engines, each round in a rotated order."""
    for engine in peers:
        engine.timed(*args)
    times: list[list[float]] = [[] for _ in peers]
    for number in range(runs):
        for index in (list(range(len(peers))) * 2)[number % len(peers):][:len(peers)]:
            times[index].append(peers[index].timed(*args)[0])
    return [statistics.median(t) for t in times]


@contextlib.contextmanager
def stub_server(work: Path, body: bytes) -> Iterator[str]:
    """A server that costs nothing: ``/_ping`` and every other request answered at once
    with canned bytes (``body``: a list as serve gave it), in a thread.  The docker CLI
    against it is the floor no server can go below."""
    import asyncio
    import threading

    sock = work / "stub.sock"
    head = b"HTTP/1.1 200 OK\r\nApi-Version: 1.50\r\nOstype: linux\r\n"
    ping = head + b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n"
    listed = head + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % \
        len(body) + body

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                if b"/_ping" in line:
                    writer.write(ping if line.startswith(b"HEAD") else ping + b"OK")
                else:
                    writer.write(listed)
                await writer.drain()
        writer.close()

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        server = await asyncio.start_unix_server(handle, str(sock))
        ready.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"unix://{sock}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def cpu_ms(pid: int) -> float:
    """User + system CPU time of the process so far, in milliseconds."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


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
        with _http(host) as client:
            listed = client.get("/containers/json?all=1").content
        with stub_server(peers.work, listed) as stub_host:
            stub = Engine("stub", list(docker.argv), dict(docker.env, DOCKER_HOST=stub_host),
                          docker.image)
            ps_ours, floor, ps_theirs = interleaved_all(args.runs, [serve, stub, docker],
                                                        "ps", "-a", "-q")
        _row(f"docker ps -a ({args.containers} containers)", ps_ours * 1000, ps_theirs * 1000,
             "ms", "<= 0.5x")
        _row("  the CLI alone (a server that costs 0)", floor * 1000, ps_theirs * 1000, "ms",
             "(the best ratio any server can reach)")
        rates: tuple[list[float], list[float]] = ([], [])
        cpu: tuple[list[float], list[float]] = ([], [])
        count = args.requests // 3
        for _ in range(3):
            for side, (address, pid) in enumerate(((host, server.pid),
                                                   (peers.daemon.host,
                                                    peers.daemon.process.pid))):
                before = cpu_ms(pid)
                rates[side].append(requests_per_second(address, count))
                cpu[side].append((cpu_ms(pid) - before) / (count + 1))
        _row(f"GET /containers/json?all=1 ({args.containers})", statistics.median(rates[0]),
             statistics.median(rates[1]), "req/s", ">= 2x")
        _row("  the server's CPU per request", statistics.median(cpu[0]),
             statistics.median(cpu[1]), "ms", "(lower is better)")
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
