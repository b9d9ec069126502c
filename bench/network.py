"""Published-port throughput and connection rate against the container's address.

A busybox container serves a file with httpd on a bridge; the host fetches it
through the published port on 127.0.0.1 (userland proxy) and directly from the
container's address, N times each, and prints both and their ratio
(published / direct), and where dockerd is installed the same through docker's
published port (docker-proxy, in a private dockerd on a bridge made here), as the
ratio dockyard / docker.

``--dnat`` runs everything in a throw-away network namespace and adds the other way to
publish a port — an iptables DNAT of 127.0.0.1:PORT to the container (with
route_localnet and a MASQUERADE, as dockerd does without its proxy) — so the choice
between the two is made on figures; nothing of it touches the host's rules.

Usage (as root): python bench/network.py [--mb 50] [--conns 200] [--no-docker] [--dnat]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dockyard.testing import dockerd
from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import free_port, scratch_root


def _fetch(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - local only
        return len(response.read())


def _wait(base: str) -> None:
    for _ in range(100):
        try:
            _fetch(base + "/small")
            return
        except OSError:
            time.sleep(0.1)


def _measure(base: str, conns: int) -> tuple[float, float]:
    _wait(base)
    start = time.perf_counter()
    size = sum(_fetch(base + "/big") for _ in range(3))
    throughput = size / (time.perf_counter() - start) / 1e6
    start = time.perf_counter()
    for _ in range(conns):
        _fetch(base + "/small")
    return throughput, conns / (time.perf_counter() - start)


def _docker(tar: Path, conns: int) -> tuple[float, float]:
    """The same server behind docker's published port: a private dockerd whose default
    bridge is one of its own (made and removed by the helper), so the host's networks
    are untouched."""
    with dockerd.running_dockerd("--storage-driver=overlay2") as daemon:
        daemon.docker("import", "-", "netbench:1", stdin=tar.read_bytes())
        port = free_port()
        daemon.docker("run", "-d", "--name", "srv", "-p", f"127.0.0.1:{port}:8080",
                      "netbench:1", "httpd", "-f", "-p", "8080", "-h", "/www")
        try:
            return _measure(f"http://127.0.0.1:{port}", conns)
        finally:
            daemon.docker("rm", "-f", "srv", check=False)


def _in_private_netns() -> int:
    """Re-run this benchmark inside a network namespace made (and removed) here."""
    namespace = f"dy-netbench-{os.urandom(4).hex()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        subprocess.run(["nsenter", f"--net=/run/netns/{namespace}", "ip", "link", "set", "lo",
                        "up"], check=True)
        return subprocess.run(["nsenter", f"--net=/run/netns/{namespace}", sys.executable,
                               *sys.argv, "--inside-netns"], check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)


def _dnat(address: str) -> str:
    """Publish with DNAT instead (in the benchmark's own namespace only)."""
    port = free_port()
    for command in (["sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1"],
                    ["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.1",
                     "--dport", str(port), "-j", "DNAT", "--to-destination",
                     f"{address}:8080"],
                    ["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "127.0.0.1",
                     "-d", address, "-j", "MASQUERADE"]):
        subprocess.run(command, check=True)
    return f"http://127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--conns", type=int, default=200)
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--dnat", action="store_true")
    parser.add_argument("--inside-netns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dnat and not args.inside_netns:
        return _in_private_netns()
    with scratch_root("dy-netbench-") as (work, cli):
        def content(rootfs: Path) -> None:
            (rootfs / "www").mkdir()
            (rootfs / "www" / "big").write_bytes(b"x" * args.mb * 1024 * 1024)
            (rootfs / "www" / "small").write_bytes(b"ok")

        tar = make_rootfs_tar(work, content)
        cli("import", str(tar), "netbench:1")
        port = free_port()
        cli("run", "-d", "--name", "srv", "--network", "bridge", "-p", f"127.0.0.1:{port}:8080",
            "netbench:1", "httpd", "-f", "-p", "8080", "-h", "/www")
        address = json.loads(cli("container", "inspect", "srv").stdout)[0]["NetworkSettings"][
            "IPAddress"]
        bases = {"published": f"http://127.0.0.1:{port}", "direct": f"http://{address}:8080"}
        if args.inside_netns:
            bases["dnat"] = _dnat(address)
        results = {name: _measure(base, args.conns) for name, base in bases.items()}
        if "dnat" in results:
            dnat, direct = results["dnat"], results["direct"]
            print(f"ratio dnat/direct: throughput {dnat[0] / direct[0]:.2f}, "
                  f"connection rate {dnat[1] / direct[1]:.2f}")
        if not args.no_docker and not args.inside_netns and dockerd.available():
            results["docker published"] = _docker(tar, args.conns)
        for name, (throughput, rate) in results.items():
            print(f"{name:17} throughput {throughput:8.1f} MB/s   connections {rate:7.1f}/s")
        pub, direct = results["published"], results["direct"]
        print(f"ratio published/direct: throughput {pub[0] / direct[0]:.2f}, "
              f"connection rate {pub[1] / direct[1]:.2f}")
        if "docker published" in results:
            theirs = results["docker published"]
            print(f"ratio dockyard/docker published: throughput {pub[0] / theirs[0]:.2f}, "
                  f"connection rate {pub[1] / theirs[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
