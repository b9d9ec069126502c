"""Published ports through the kernel (DNAT, route_localnet on our bridge only) and,
where asked or where the kernel cannot (IPv6), through the userland proxy: the path
taken, hairpin, what is left after rm / network rm, another root's bridge untouched,
a container from before the kernel layout, a killed supervisor's rules, and IP
forwarding turned on as dockerd does (in namespaces of the tests' own).  Traffic goes
only to 127.0.0.1 / ::1, to containers on bridges the tests make and to namespaces
they make."""

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
from dockyard.testing.bundles import busybox_path
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
def private_netns(dy: Dockyard, tmp_path: Path
                  ) -> Iterator[tuple[Dockyard, Callable[[str], str]]]:
    """``dy`` running in a throw-away network namespace (its iptables, sysctls and
    addresses are its own), and a shell in it.  Its commands also share a mount
    namespace of the test's own where ``/sys/class/net`` (and the devices it links
    to) is a sysfs of that network namespace, as ``ip netns exec`` gives one, so what
    dockyard reads there is the namespace's links; the cgroup mounts stay."""
    namespace = f"dy-pubtest-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    sysfs = tmp_path / "sysfs"
    sysfs.mkdir()
    holder = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{namespace}", "unshare", "--mount",
         "--propagation", "private", "sh", "-c",
         f"mount -t sysfs sysfs {sysfs} && "
         f"mount --bind {sysfs}/class/net /sys/class/net && "
         f"mount --bind {sysfs}/devices/virtual/net /sys/devices/virtual/net && "
         "echo ready && exec sleep 86400"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
    inside = Dockyard(dy.root, dy.root.parent / "docker-config")
    enter = ["nsenter", f"--net=/run/netns/{namespace}", f"--mount=/proc/{holder.pid}/ns/mnt"]
    inside.argv = [*enter, *dy.argv]
    inside.env = dict(dy.env)
    inside.env.pop("DOCKYARD_DEFAULT_BIND_IP")  # every address: only this namespace's
    inside.env.pop("DOCKYARD_IP_FORWARD")  # the default: dockyard turns forwarding on

    def sh(command: str) -> str:
        return subprocess.run([*enter, "sh", "-c", command], capture_output=True,
                              text=True, check=True).stdout

    sh("ip link set lo up")
    # a new namespace takes the host's forwarding: start from a fresh host's, off
    sh("sysctl -qw net.ipv4.ip_forward=0")
    try:
        yield inside, sh
    finally:
        inside.remove_everything()
        holder.kill()
        holder.communicate()
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


# --- IP forwarding: on, with a DROP policy, when dockyard is the one turning it on ----


@pytest.fixture
def world(private_netns: tuple[Dockyard, Callable[[str], str]]
          ) -> Iterator[Callable[[str], str]]:
    """A second namespace of the test's own beyond the private one (10.219.60.1 there,
    10.219.60.2 on the private side), a shell in it: "the outside" a container reaches
    through its host, and a host on the LAN that tries to come in."""
    inside, sh = private_netns
    namespace = f"dy-world-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    enter = ["nsenter", f"--net=/run/netns/{namespace}"]

    def there(command: str) -> str:
        return subprocess.run([*enter, "sh", "-c", command], capture_output=True,
                              text=True, check=True).stdout

    try:
        link = f"lan{uuid.uuid4().hex[:8]}"  # (not dy…: dockyard's bridges are dy+)
        private = inside.argv[1].rpartition("/")[2]  # (--net=/run/netns/NAME)
        subprocess.run(["ip", "-n", private, "link", "add", link, "type", "veth", "peer",
                        "name", f"{link}p", "netns", namespace], check=True)
        sh(f"ip addr add 10.219.60.2/24 dev {link} && ip link set {link} up")
        there(f"ip link set lo up && ip link set {link}p name eth0 && "
              "ip addr add 10.219.60.1/24 dev eth0 && ip link set eth0 up && "
              "ip route add 10.219.57.0/24 via 10.219.60.2")
        yield there
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)


def _forwarding(sh: Callable[[str], str]) -> tuple[str, str]:
    policy = next(line.split()[2] for line in sh("iptables -w -S FORWARD").splitlines()
                  if line.startswith("-P FORWARD"))
    return sh("cat /proc/sys/net/ipv4/ip_forward").strip(), policy


def _pings(run: Callable[[str], str], address: str) -> bool:
    try:
        run(f"{busybox_path()} ping -c 1 -W 1 {address} >/dev/null")
    except subprocess.CalledProcessError:
        return False
    return True


def test_a_routed_network_turns_forwarding_on_and_the_forward_policy_to_drop(
        private_netns: tuple[Dockyard, Callable[[str], str]],
        world: Callable[[str], str]) -> None:
    """On a host that does not forward (a fresh one), the first routed network turns
    forwarding on so containers reach beyond their bridge (MASQUERADEd), and the
    FORWARD policy to DROP so the host routes nothing else: a LAN host can reach a
    published port but not a container's address, whatever the policy."""
    inside, sh = private_netns
    assert _forwarding(sh) == ("0", "ACCEPT")
    assert _pings(world, "10.219.60.2")  # the LAN reaches the host itself
    inside("network", "create", "--internal", "--subnet", "10.219.58.0/24", "closed")
    assert _forwarding(sh) == ("0", "ACCEPT")  # an internal network routes nothing
    inside("network", "create", "--subnet", "10.219.57.0/24", "out")
    assert _forwarding(sh) == ("1", "DROP")
    out = inside("run", "--rm", "--network", "out", "box:1", "sh", "-c",
                 "ping -c 1 -W 2 10.219.60.1 >/dev/null && echo reached").stdout
    assert out == "reached\n"  # out through the host, MASQUERADEd
    port = 18081
    inside("run", "-d", "--name", "lan", "--network", "out", "--ip", "10.219.57.9", "-p",
           f"{port}:8080", "box:1", "sh", "-c", HTTPD.format(text="published"))
    assert _fetch(world, f"http://10.219.60.2:{port}/") == "published\n"
    assert not _pings(world, "10.219.57.9")  # an unpublished address: dropped
    sh("iptables -w -P FORWARD ACCEPT")  # and so it stays with any policy (the root's
    assert not _pings(world, "10.219.57.9")  # chain drops it, as dockerd's does)
    assert _fetch(world, f"http://10.219.60.2:{port}/") == "published\n"
    inside("rm", "-f", "lan")
    inside("network", "rm", "out", "closed")
    assert sh("cat /proc/sys/net/ipv4/ip_forward").strip() == "1"  # left on, as dockerd


def test_forwarding_is_checked_on_every_use_and_only_for_routed_networks(
        private_netns: tuple[Dockyard, Callable[[str], str]]) -> None:
    """Turned off again while the bridge stays (or never on for a root made with the
    setting false), the next start on a routed network turns it on; listing, an
    internal network and a prune never do."""
    inside, sh = private_netns
    inside("network", "ls")  # (makes the default network's record, not its bridge)
    inside("network", "create", "--internal", "--subnet", "10.219.58.0/24", "closed")
    inside("network", "create", "--subnet", "10.219.57.0/24", "kept",
           env={"DOCKYARD_IP_FORWARD": "0"})
    inside("network", "prune", "-f")  # (removes closed; kept has no container: it too)
    assert _forwarding(sh) == ("0", "ACCEPT")
    inside("network", "create", "--subnet", "10.219.57.0/24", "out",
           env={"DOCKYARD_IP_FORWARD": "0"})
    assert _forwarding(sh) == ("0", "ACCEPT")
    inside("run", "--rm", "--network", "out", "box:1", "true")  # the bridge is there
    assert _forwarding(sh) == ("1", "DROP")
    sh("sysctl -qw net.ipv4.ip_forward=0")  # turned off behind dockyard's back
    inside("run", "--rm", "--network", "out", "box:1", "true")
    assert _forwarding(sh) == ("1", "DROP")


def test_forwarding_already_on_keeps_its_policy_and_the_setting_off_touches_nothing(
        private_netns: tuple[Dockyard, Callable[[str], str]]) -> None:
    inside, sh = private_netns
    inside("network", "create", "--subnet", "10.219.57.0/24", "off",
           env={"DOCKYARD_IP_FORWARD": "false"})
    assert _forwarding(sh) == ("0", "ACCEPT")  # the engine setting ip_forward false
    inside("network", "rm", "off")
    sh("sysctl -qw net.ipv4.ip_forward=1")
    inside("network", "create", "--subnet", "10.219.57.0/24", "on")
    assert _forwarding(sh) == ("1", "ACCEPT")  # the host's own choice stays
    inside("network", "rm", "on")


def test_forwarding_that_cannot_be_turned_on_fails_the_network_and_changes_nothing(
        private_netns: tuple[Dockyard, Callable[[str], str]]) -> None:
    """A read-only ip_forward (as inside a container): the network is refused, saying
    what to do, the policy is put back and no network, bridge or chain is left."""
    inside, sh = private_netns
    readonly = ["unshare", "--mount", "sh", "-c",
                "f=/proc/sys/net/ipv4/ip_forward; mount --bind $f $f && "
                "mount -o remount,bind,ro $f && exec \"$@\"", "sh"]
    failed = subprocess.run([*inside.argv[:3], *readonly, *inside.argv[3:], "network",
                             "create", "--subnet", "10.219.57.0/24", "out"],
                            env=inside.env, capture_output=True, text=True, check=False)
    assert failed.returncode != 0
    assert "cannot turn IP forwarding on" in failed.stderr, failed.stderr
    assert "DOCKYARD_IP_FORWARD=0" in failed.stderr
    assert _forwarding(sh) == ("0", "ACCEPT")
    names = inside("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert sorted(names) == ["bridge", "host", "none"]
    assert "DY-" not in sh("iptables-save") and "dy-" not in sh("ip -br link")
