"""Published ports through the kernel (DNAT, route_localnet on our bridge only) and,
where asked or where the kernel cannot (IPv6), through the userland proxy: the path
taken, hairpin, what is left after rm / network rm, another root's bridge untouched,
a container from before the kernel layout, and a killed supervisor's rules.  Traffic
goes only to 127.0.0.1 / ::1 and to containers on bridges the tests make."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.network import firewall
from dockyard.testing.cli import Dockyard, free_port
from dockyard.testing.poll import until

pytestmark = pytest.mark.root

HTTPD = "mkdir -p /www; echo {text} > /www/index.html; exec httpd -f -p 8080 -h /www"


@pytest.fixture
def dy(box: Dockyard) -> Dockyard:
    box.env.pop("DOCKYARD_USERLAND_PROXY", None)  # the default: the kernel's path
    return box


def _get(url: str, deadline: float = 10) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def _inspect(dy: Dockyard, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(dy("container", "inspect", name).stdout)[0]
    return doc


def _bridge(dy: Dockyard, network: str) -> str:
    doc = json.loads(dy("network", "inspect", network).stdout)[0]
    return str(doc["Options"]["com.docker.network.bridge.name"])


def _status(dy: Dockyard, container_id: str) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(
        (dy.root / "containers" / container_id / "status.json").read_text())
    return status


def _save(*args: str, enter: tuple[str, ...] = ()) -> str:
    return subprocess.run([*enter, "iptables-save", *args], capture_output=True, text=True,
                          check=True).stdout


def _rules_of(container_id: str, enter: tuple[str, ...] = ()) -> list[str]:
    return [line for line in _save("-t", "nat", enter=enter).splitlines()
            if f"dy:{container_id[:12]}" in line]


def _dnat_packets(root: Path, port: int) -> int:
    """Packets the kernel layout's chain DNATed to ``port`` (0 if no rule)."""
    listing = subprocess.run(["iptables", "-w", "-t", "nat", "-L",
                              firewall.port_chains(str(root))[2], "-v", "-n", "-x"],
                             capture_output=True, text=True, check=False).stdout
    return sum(int(line.split()[0]) for line in listing.splitlines()
               if "DNAT" in line and f"dpt:{port}" in line)


def _localnet(name: str) -> str:
    try:
        return Path(f"/proc/sys/net/ipv4/conf/{name}/route_localnet").read_text().strip()
    except OSError:
        return "gone"


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _bind_fails(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAITs
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def test_loopback_goes_through_the_kernel_and_goes_away_with_the_container(
        dy: Dockyard) -> None:
    before_all = (_localnet("all"), _localnet("default"), _localnet("lo"))
    port = free_port()
    cid = dy("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:8080", "box:1", "sh",
             "-c", HTTPD.format(text="via-kernel")).stdout.strip()
    bridge = _bridge(dy, "bridge")  # (this root's default bridge: no DNS thread)
    assert _get(f"http://127.0.0.1:{port}/") == "via-kernel\n"
    assert _dnat_packets(dy.root, port) > 0  # the kernel carried it, not a proxy
    assert _localnet(bridge) == "1"  # on our bridge only
    assert (_localnet("all"), _localnet("default"), _localnet("lo")) == before_all
    supervisor = _status(dy, cid)["supervisor_pid"]
    assert _threads(supervisor) == 1  # no proxy thread: the port is only held
    assert _bind_fails(port)  # ... and held: nobody else takes it meanwhile
    assert len(_rules_of(cid)) == 1
    dy("rm", "-f", "web")
    assert _rules_of(cid) == [] and not _bind_fails(port)
    dy("network", "prune", "-f")
    assert _localnet(bridge) == "gone"
    assert firewall.chain_names(str(dy.root))[0] not in _save()  # no chain, rule or jump


# A frame a container builds itself: to the bridge's MAC, IPv4 to 127.0.0.1, UDP
_TO_LOOPBACK = r"""
import socket, struct, sys
iface, mac, source, port = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), \
    sys.argv[3], int(sys.argv[4])
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((iface, 0))
payload = b"through-the-bridge"
udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton(source), socket.inet_aton("127.0.0.1"))
total = sum(struct.unpack("!10H", header))
while total >> 16:
    total = (total & 0xFFFF) + (total >> 16)
header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
sock.send(mac + sock.getsockname()[4] + b"\x08\x00" + header + udp)
"""


def test_route_localnet_does_not_open_the_hosts_loopback_to_containers(
        dy: Dockyard) -> None:
    """With route_localnet on its bridge, the kernel would deliver a container's packet
    for 127.0.0.1 to the host's loopback-only services: the raw chain drops it."""
    port = free_port()
    dy("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:8080", "box:1", "sh", "-c",
       HTTPD.format(text="x"))
    bridge = _bridge(dy, "bridge")
    assert _localnet(bridge) == "1"
    doc = _inspect(dy, "web")
    mac = Path(f"/sys/class/net/{bridge}/address").read_text().strip()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as service:  # loopback only
        service.bind(("127.0.0.1", 0))
        service.settimeout(1.5)

        def send() -> None:
            subprocess.run(["nsenter", f"--net=/proc/{doc['State']['Pid']}/ns/net",
                            sys.executable, "-c", _TO_LOOPBACK, "eth0", mac,
                            doc["NetworkSettings"]["IPAddress"],
                            str(service.getsockname()[1])], check=True, timeout=30)

        send()
        with pytest.raises(TimeoutError):
            service.recv(100)
        # the test can tell: without the guard, the packet arrives
        guard = firewall.guard_rules(str(dy.root), bridge)[1].split()[1:]
        subprocess.run(["iptables", "-w", "-t", "raw", "-D", *guard], check=True)
        send()
        assert service.recv(100) == b"through-the-bridge"


def test_the_userland_proxy_setting_keeps_loopback_in_the_proxy(dy: Dockyard) -> None:
    (dy.root / "engine.json").write_text(json.dumps({"userland_proxy": True}))
    dy("network", "create", "--subnet", "10.219.51.0/24", "prox")
    bridge = _bridge(dy, "prox")
    port = free_port()
    cid = dy("run", "-d", "--name", "web", "--network", "prox", "-p",
             f"127.0.0.1:{port}:8080", "box:1", "sh", "-c",
             HTTPD.format(text="via-proxy")).stdout.strip()
    assert _get(f"http://127.0.0.1:{port}/") == "via-proxy\n"
    assert _rules_of(cid) == []  # loopback: the proxy's, no DNAT
    assert _localnet(bridge) == "0"
    assert _threads(_status(dy, cid)["supervisor_pid"]) > 1  # the proxy's accept thread
    # the environment overrides the file, as for every engine setting
    port2 = free_port()
    cid2 = dy("run", "-d", "--name", "web2", "--network", "prox", "-p",
              f"127.0.0.1:{port2}:8080", "box:1", "sh", "-c", HTTPD.format(text="kernel"),
              env={"DOCKYARD_USERLAND_PROXY": "false"}).stdout.strip()
    assert _get(f"http://127.0.0.1:{port2}/") == "kernel\n"
    assert len(_rules_of(cid2)) == 1 and _localnet(bridge) == "1"
    dy("rm", "-f", "web", "web2")
    dy("network", "rm", "prox")


def test_ipv6_loopback_keeps_the_proxy(dy: Dockyard) -> None:
    """No route_localnet for ::1: a port published on it is relayed by the proxy."""
    if not Path("/proc/net/if_inet6").exists() or "00000000000000000000000000000001" \
            not in Path("/proc/net/if_inet6").read_text():
        pytest.skip("no ::1 on this host")
    port = free_port()
    cid = dy("run", "-d", "--name", "six", "-p", f"[::1]:{port}:8080", "box:1", "sh", "-c",
             HTTPD.format(text="over-ipv6")).stdout.strip()
    assert _get(f"http://[::1]:{port}/") == "over-ipv6\n"
    assert _rules_of(cid) == []
    assert _bind_fails(port, "::1")
    dy("rm", "-f", "six")
    assert not _bind_fails(port, "::1")


def test_another_roots_bridge_and_chains_are_untouched(dy: Dockyard, tmp_path: Path) -> None:
    other = Dockyard(tmp_path / "other", tmp_path / "docker-config")
    other("network", "create", "--subnet", "10.219.52.0/24", "otherside")
    try:
        other_bridge = _bridge(other, "otherside")
        tag = firewall.chain_names(str(other.root))[0]
        theirs = [line for line in _save().splitlines() if tag in line]
        port = free_port()
        dy("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:8080", "box:1", "sh",
           "-c", HTTPD.format(text="mine"))
        assert _get(f"http://127.0.0.1:{port}/") == "mine\n"
        assert _localnet(_bridge(dy, "bridge")) == "1"
        assert _localnet(other_bridge) == "0"
        assert [line for line in _save().splitlines() if tag in line] == theirs
        dy("rm", "-f", "web")
    finally:
        other("network", "rm", "otherside", check=False)


def _old_layout(dy: Dockyard, bridge: str, subnet: str) -> None:
    """Make the root's chains what a dockyard before the kernel layout made: no raw
    chain, no loopback or hairpin MASQUERADE, route_localnet off on the bridge."""
    root = str(dy.root)
    raw = firewall.raw_chain(root)
    for command in (["-t", "raw", "-D", "PREROUTING", "-j", raw], ["-t", "raw", "-F", raw],
                    ["-t", "raw", "-X", raw]):
        subprocess.run(["iptables", "-w", *command], check=True)
    for rule in firewall.kernel_nat_rules(root, bridge, subnet):
        subprocess.run(["iptables", "-w", "-t", "nat", "-D", *rule.split()[1:]], check=True)
    Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").write_text("0")


def test_a_container_from_before_the_kernel_layout_keeps_working(dy: Dockyard) -> None:
    """A container started by the proxy layout (as every one was before): its rules in
    the old chains, loopback through its supervisor's proxy.  It keeps working beside
    new containers, when its root's chains are rebuilt, and everything goes at the end."""
    dy("network", "create", "--subnet", "10.219.53.0/24", "old")
    bridge = _bridge(dy, "old")
    old_port, dnat_port, new_port = free_port(), free_port(), free_port()
    old = dy("run", "-d", "--name", "old", "--network", "old", "-p",
             f"127.0.0.1:{old_port}:8080", "-p", f"10.219.53.1:{dnat_port}:8080", "box:1",
             "sh", "-c", HTTPD.format(text="from-before"),
             env={"DOCKYARD_USERLAND_PROXY": "1"}).stdout.strip()
    inbound, outbound, _kernel = firewall.port_chains(str(dy.root))
    assert {line.split()[1] for line in _rules_of(old)} == {inbound, outbound}
    _old_layout(dy, bridge, "10.219.53.0/24")
    new = dy("run", "-d", "--name", "new", "--network", "old", "-p",
             f"127.0.0.1:{new_port}:8080", "box:1", "sh", "-c",
             HTTPD.format(text="after")).stdout.strip()
    # the new container's supervisor brought the old chains up to date for its bridge
    assert _get(f"http://127.0.0.1:{new_port}/") == "after\n"
    assert _localnet(bridge) == "1"
    assert all(rule in _save() for rule in firewall.guard_rules(str(dy.root), bridge))
    dy("network", "create", "--subnet", "10.219.54.0/24", "rebuilt")  # chains rebuilt
    for rebuilt in (True, False):
        assert _get(f"http://127.0.0.1:{old_port}/") == "from-before\n"
        assert _get(f"http://10.219.53.1:{dnat_port}/") == "from-before\n"
        assert _get(f"http://127.0.0.1:{new_port}/") == "after\n"
        if rebuilt:
            dy("network", "rm", "rebuilt")  # and rebuilt again
    dy("rm", "-f", "old", "new")
    assert _rules_of(old) == [] and _rules_of(new) == []
    dy("network", "rm", "old")  # the root's last network: its chains, old and new, go
    assert firewall.existing_chains(str(dy.root)) == []


def test_a_killed_supervisors_rules_are_withdrawn_or_taken_over(dy: Dockyard) -> None:
    dy.env["DOCKYARD_ZYGOTE_WATCHDOG"] = "0"  # the next command recovers, as in
    port, kept_port = free_port(), free_port()  # test_supervision
    cid = dy("run", "-d", "--name", "lost", "-p", f"127.0.0.1:{port}:8080", "box:1", "sh",
             "-c", HTTPD.format(text="unsupervised")).stdout.strip()
    status = _status(dy, cid)
    os.kill(status["supervisor_pid"], signal.SIGKILL)
    until("the supervisor to die", lambda: not os.path.exists(
        f"/proc/{status['supervisor_pid']}"))
    # the kernel carries on without it
    assert _get(f"http://127.0.0.1:{port}/") == "unsupervised\n"
    os.kill(status["pid"], signal.SIGKILL)
    until("the init to die", lambda: not os.path.exists(f"/proc/{status['pid']}"))
    assert _inspect(dy, "lost")["State"]["ExitCode"] == 255  # the next command's recovery
    assert _rules_of(cid) == []
    assert dy("system", "check").stdout.strip() == "ok: store consistent"
    # re-adopted (restart policy): its ports bound again, its rules once
    kept = dy("run", "-d", "--name", "kept", "--restart", "always", "-p",
              f"127.0.0.1:{kept_port}:8080", "box:1", "sh", "-c",
              HTTPD.format(text="kept")).stdout.strip()
    status = _status(dy, kept)
    os.kill(status["supervisor_pid"], signal.SIGKILL)
    until("the supervisor to die", lambda: not os.path.exists(
        f"/proc/{status['supervisor_pid']}"))
    assert dy("ps", "-q").stdout.split() == [kept[:12]]  # re-adopts
    assert _status(dy, kept)["supervisor_pid"] != status["supervisor_pid"]
    assert _get(f"http://127.0.0.1:{kept_port}/") == "kept\n"
    assert len(_rules_of(kept)) == 1 and _bind_fails(kept_port)
    dy("rm", "-f", "kept")
    assert _rules_of(kept) == []


# --- in a network namespace of the test's own: every address, hairpin, br_netfilter --


@pytest.fixture
def private_netns(dy: Dockyard) -> Iterator[tuple[Dockyard, Callable[[str], str]]]:
    """``dy`` running in a throw-away network namespace (its iptables, sysctls and
    addresses are its own), and a shell in it."""
    namespace = f"dy-pubtest-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    inside = Dockyard(dy.root, dy.root.parent / "docker-config")
    enter = ["nsenter", f"--net=/run/netns/{namespace}"]
    inside.argv = [*enter, *dy.argv]  # (nsenter, not `ip netns exec`: /sys stays)
    inside.env = dict(dy.env)
    inside.env.pop("DOCKYARD_DEFAULT_BIND_IP")  # every address: only this namespace's

    def sh(command: str) -> str:
        return subprocess.run([*enter, "sh", "-c", command], capture_output=True,
                              text=True, check=True).stdout

    sh("ip link set lo up")
    # routing between its bridges (hairpin, another network) needs forwarding, which a
    # new namespace takes from the host's setting (0 on a fresh host): dockyard does not
    # turn it on itself yet (README, Isolation and the firewall)
    sh("sysctl -qw net.ipv4.ip_forward=1")
    try:
        yield inside, sh
    finally:
        inside.remove_everything()
        subprocess.run(["ip", "netns", "del", namespace], check=False)


def _fetch(sh: Callable[[str], str], url: str) -> str:
    return sh(f"for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do {sys.executable} -c "
              f"\"import urllib.request as u; print(u.urlopen('{url}', timeout=2)"
              f".read().decode(), end='')\" 2>/dev/null && break; sleep 0.2; done")


@pytest.mark.parametrize("br_netfilter", ["0", "1"])
def test_every_address_loopback_and_hairpin(
        private_netns: tuple[Dockyard, Callable[[str], str]], br_netfilter: str) -> None:
    """``-p PORT:8080`` (every address) answers on 127.0.0.1 and 127.0.0.2; a container
    reaches its own published port through the host's address (hairpin) and so do
    containers on its network and on another one, with br_netfilter passing bridged
    frames through iptables or not."""
    inside, sh = private_netns
    if Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        sh(f"echo {br_netfilter} > /proc/sys/net/bridge/bridge-nf-call-iptables")
    elif br_netfilter == "1":  # (without the module, bridged frames skip iptables anyway)
        pytest.skip("br_netfilter is not loaded")
    inside("network", "create", "--subnet", "10.219.55.0/24", "front")
    inside("network", "create", "--subnet", "10.219.56.0/24", "back")
    port = 18080
    cid = inside("run", "-d", "--name", "web", "--network", "front", "-p", f"{port}:8080",
                 "box:1", "sh", "-c", HTTPD.format(text="everywhere")).stdout.strip()
    assert _fetch(sh, f"http://127.0.0.1:{port}/") == "everywhere\n"
    assert _fetch(sh, f"http://127.0.0.2:{port}/") == "everywhere\n"
    wget = ("for i in 1 2 3 4 5 6 7 8 9 10; do timeout 3 wget -q -O - "
            f"http://{{host}}:{port}/ && break; sleep 0.2; done")
    hairpin = inside("exec", "web", "sh", "-c", wget.format(host="10.219.55.1")).stdout
    assert hairpin == "everywhere\n"
    for network, gateway in (("front", "10.219.55.1"), ("back", "10.219.56.1")):
        out = inside("run", "--rm", "--network", network, "box:1", "sh", "-c",
                     wget.format(host=gateway)).stdout
        assert out == "everywhere\n", network
    assert len(_rules_of(cid, enter=tuple(inside.argv[:2]))) == 1
    inside("rm", "-f", "web")
    inside("network", "prune", "-f")
    assert "DY-" not in sh("iptables-save")
