"""The bridge network and published ports, with traffic only on this test's bridge
and 127.0.0.1; the bridge is removed at the end (the leak check verifies)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dockyard.testing.cli import Dockyard, free_port

pytestmark = pytest.mark.root

HTTPD = "mkdir -p /www; echo {text} > /www/index.html; exec httpd -f -p 8080 -h /www"


@pytest.fixture
def dy(box: Dockyard) -> Dockyard:
    return box


def _get(url: str, deadline: float = 10) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def test_published_port_answers_on_loopback(dy: Dockyard) -> None:
    port = free_port()
    dy("run", "-d", "--name", "web", "--network", "bridge", "-p", f"127.0.0.1:{port}:8080",
       "box:1", "sh", "-c", HTTPD.format(text="hello-from-web"))
    assert _get(f"http://127.0.0.1:{port}/") == "hello-from-web\n"
    doc = json.loads(dy("container", "inspect", "web").stdout)[0]
    assert doc["NetworkSettings"]["Ports"]["8080/tcp"] == [{"HostIp": "127.0.0.1",
                                                            "HostPort": str(port)}]


def test_containers_on_the_bridge_reach_each_other(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "server", "--network", "bridge", "box:1", "sh", "-c",
       HTTPD.format(text="peer-data"))
    address = json.loads(dy("container", "inspect", "server").stdout)[0][
        "NetworkSettings"]["IPAddress"]
    out = dy("run", "--rm", "--network", "bridge", "box:1", "sh", "-c",
             f"for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://{address}:8080/ && "
             "break; sleep 0.2; done").stdout
    assert out == "peer-data\n"


def test_a_taken_port_fails_before_the_container_starts(dy: Dockyard) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = dy("run", "--name", "clash", "--network", "bridge", "-p",
                    f"127.0.0.1:{port}:80", "box:1", "echo", "should-not-run", check=False)
    assert result.returncode == 125
    assert f"127.0.0.1:{port} failed: port is already allocated" in result.stderr
    assert dy("logs", "clash").stdout == ""


def test_none_has_only_loopback(dy: Dockyard) -> None:
    out = dy("run", "--rm", "--network", "none", "box:1", "ls", "/sys/class/net").stdout
    assert out.split() == ["lo"]
    # and lo is up, as Docker leaves it: a server on 127.0.0.1 answers
    served = dy("run", "--rm", "--network", "none", "box:1", "sh", "-c",
                "httpd -p 127.0.0.1:8080 -h /etc && wget -q -O - http://127.0.0.1:8080/hostname"
                ).stdout
    assert served.strip()


def test_publish_all_and_port(dy: Dockyard, rootfs_tar: Path) -> None:
    dy("import", "-c", "EXPOSE 8080", str(rootfs_tar), "exposed:1")
    dy("run", "-d", "--name", "pub", "--network", "bridge", "-P", "exposed:1", "sh", "-c",
       HTTPD.format(text="published-all"))
    mapping = dy("port", "pub", "8080").stdout.strip()
    host_ip, host_port = mapping.rsplit(":", 1)
    assert host_ip == "127.0.0.1"  # DOCKYARD_DEFAULT_BIND_IP, set for every test
    assert _get(f"http://127.0.0.1:{host_port}/") == "published-all\n"
    assert dy("port", "pub").stdout.strip() == f"8080/tcp -> {mapping}"


def test_ps_shows_published_ports(dy: Dockyard) -> None:
    port = free_port()
    dy("run", "-d", "--name", "shown", "-p", f"127.0.0.1:{port}:8080", "box:1", "sleep", "30")
    assert dy("ps", "--format", "{{.Ports}}").stdout.strip() == \
        f"127.0.0.1:{port}->8080/tcp"


def _inspect(dy: Dockyard, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(dy("container", "inspect", name).stdout)[0]
    return doc


def _chains(dy: Dockyard) -> str:
    import subprocess

    from dockyard.network.firewall import chain_names

    filter_chain, nat_chain = chain_names(str(dy.root))
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return "\n".join(line for line in out.splitlines()
                     if filter_chain in line or nat_chain in line)


def test_user_network_dns_names_and_aliases(dy: Dockyard) -> None:
    network_id = dy("network", "create", "--label", "team=a", "appnet").stdout.strip()
    dy("run", "-d", "--name", "web", "--network", "appnet", "--network-alias", "www",
       "box:1", "sh", "-c", HTTPD.format(text="served-by-name"))
    out = dy("run", "--rm", "--network", "appnet", "box:1", "sh", "-c",
             "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://web:8080/ && break; "
             "sleep 0.2; done; wget -q -O - http://www:8080/; cat /etc/resolv.conf").stdout
    gateway = json.loads(dy("network", "inspect", "appnet").stdout)[0]["IPAM"]["Config"][0][
        "Gateway"]
    assert out.splitlines()[:3] == ["served-by-name", "served-by-name", f"nameserver {gateway}"]
    web = _inspect(dy, "web")
    endpoint = web["NetworkSettings"]["Networks"]["appnet"]
    assert endpoint["NetworkID"] == network_id and endpoint["Aliases"] == ["www"]
    doc = json.loads(dy("network", "inspect", "appnet").stdout)[0]
    assert doc["Labels"] == {"team": "a"} and doc["Driver"] == "bridge"
    assert [c["Name"] for c in doc["Containers"].values()] == ["web"]
    listing = dy("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert listing == ["appnet", "bridge", "host", "none"]
    removal = dy("network", "rm", "appnet", check=False)
    assert removal.returncode == 1 and "has active endpoints" in removal.stderr
    # a stopped container answers to no name
    dy("stop", "-t", "1", "web")
    lookup = dy("run", "--rm", "--network", "appnet", "box:1", "nslookup", "web", check=False)
    assert "can't find web" in lookup.stdout + lookup.stderr
    dy("rm", "web")
    assert dy("network", "rm", "appnet").stdout.strip() == "appnet"


def test_networks_are_isolated_and_internal_has_no_way_out(dy: Dockyard) -> None:
    dy("network", "create", "front")
    dy("network", "create", "back")
    dy("network", "create", "--internal", "sealed")
    dy("run", "-d", "--name", "api", "--network", "back", "box:1", "sh", "-c",
       HTTPD.format(text="api"))
    address = _inspect(dy, "api")["NetworkSettings"]["Networks"]["back"]["IPAddress"]
    probe = ("timeout 3 wget -q -O - http://{0}:8080/ && echo REACHED || echo BLOCKED; "
             "nslookup api >/dev/null 2>&1 && echo NAMED || echo NONAME")
    same = dy("run", "--rm", "--network", "back", "box:1", "sh", "-c",
              probe.format(address)).stdout
    assert same.split() == ["api", "REACHED", "NAMED"]
    for network in ("front", "sealed", "bridge"):
        other = dy("run", "--rm", "--network", network, "box:1", "sh", "-c",
                   probe.format(address)).stdout
        assert other.split() == ["BLOCKED", "NONAME"], network
    routes = dy("run", "--rm", "--network", "sealed", "box:1", "cat", "/proc/net/route").stdout
    destinations = [line.split()[1] for line in routes.splitlines()[1:]]
    assert destinations and "00000000" not in destinations  # internal: no default route
    rules = _chains(dy)
    outward = [line for line in rules.splitlines() if "! -o" in line and "MASQUERADE" in line]
    assert len(outward) == 3  # not for "sealed"
    dy("rm", "-f", "api")
    pruned = dy("network", "prune", "-f").stdout.split()
    assert set(pruned[2:]) == {"front", "back", "sealed", "bridge"}
    assert _chains(dy) == ""


def test_connect_and_disconnect_a_running_container(dy: Dockyard) -> None:
    dy("network", "create", "one")
    dy("network", "create", "two")
    dy("run", "-d", "--name", "svc", "--network", "one", "box:1", "sh", "-c",
       HTTPD.format(text="svc"))
    fetch = "timeout 3 wget -q -O - http://svc:8080/ || echo UNREACHABLE"
    assert dy("run", "--rm", "--network", "two", "box:1", "sh", "-c",
              fetch).stdout.strip() == "UNREACHABLE"
    dy("network", "connect", "--alias", "svc-two", "two", "svc")
    assert dy("run", "--rm", "--network", "two", "box:1", "sh", "-c",
              fetch.replace("svc:", "svc-two:")).stdout.strip() == "svc"
    links = dy("exec", "svc", "ls", "/sys/class/net").stdout.split()
    assert sorted(links) == ["eth0", "eth1", "lo"]
    networks = _inspect(dy, "svc")["NetworkSettings"]["Networks"]
    assert sorted(networks) == ["one", "two"]
    dy("network", "disconnect", "two", "svc")
    assert sorted(dy("exec", "svc", "ls", "/sys/class/net").stdout.split()) == ["eth0", "lo"]
    assert dy("run", "--rm", "--network", "two", "box:1", "sh", "-c",
              fetch.replace("svc:", "svc-two:")).stdout.strip() == "UNREACHABLE"
    # connected while stopped: the network is there at the next start
    dy("stop", "-t", "1", "svc")
    dy("network", "connect", "two", "svc")
    dy("start", "svc")
    assert sorted(_inspect(dy, "svc")["NetworkSettings"]["Networks"]) == ["one", "two"]


def test_network_create_errors(dy: Dockyard) -> None:
    dy("network", "create", "--subnet", "10.219.7.0/24", "--gateway", "10.219.7.254", "fixed")
    doc = json.loads(dy("network", "inspect", "fixed").stdout)[0]
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.219.7.0/24", "Gateway": "10.219.7.254"}]
    cases = {("--subnet", "10.219.7.128/25", "overlap"): "overlaps",
             ("--subnet", "10.219.9.0/24", "--gateway", "10.1.1.1", "badgw"): "not a host",
             ("--subnet", "nonsense", "bad"): "invalid subnet",
             ("fixed",): "already exists", ("bridge",): "already exists",
             ("-d", "overlay", "ov"): "not supported", ("bad/name",): "invalid network name"}
    for args, message in cases.items():
        result = dy("network", "create", *args, check=False)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
    assert "pre-defined" in dy("network", "rm", "bridge", check=False).stderr
    assert "not found" in dy("network", "inspect", "nope", check=False).stderr


def test_ip_dns_options_extra_hosts_and_hostname(dy: Dockyard) -> None:
    dy("network", "create", "--subnet", "10.219.8.0/24", "pinned")
    out = dy("run", "--rm", "--network", "pinned", "--ip", "10.219.8.77", "--hostname",
             "custom", "--add-host", "db.local:10.9.9.9", "--dns-search", "example.test",
             "box:1", "sh", "-c",
             "hostname; grep -E 'custom|db.local' /etc/hosts; cat /etc/resolv.conf; "
             "cat /proc/net/fib_trie | grep -c 10.219.8.77").stdout.splitlines()
    assert out[0] == "custom"
    assert "10.219.8.77\tcustom" in out and "10.9.9.9\tdb.local" in out
    assert "search example.test" in out and "nameserver 10.219.8.1" in out
    taken = dy("run", "-d", "--name", "holder", "--network", "pinned", "--ip", "10.219.8.77",
               "box:1", "sleep", "30")
    assert taken.returncode == 0
    clash = dy("run", "--rm", "--network", "pinned", "--ip", "10.219.8.77", "box:1", "true",
               check=False)
    assert clash.returncode == 125 and "Address already in use" in clash.stderr
    bad = dy("run", "--rm", "--ip", "10.219.8.78", "box:1", "true", check=False)
    assert "user defined networks only" in bad.stderr
    dns = dy("run", "--rm", "--dns", "10.1.2.3", "--dns-option", "ndots:2", "box:1",
             "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.1.2.3" in dns and "options ndots:2" in dns


def test_network_container_mode_shares_the_stack(dy: Dockyard) -> None:
    dy("run", "-d", "--name", "base", "box:1", "sh", "-c", HTTPD.format(text="shared"))
    out = dy("run", "--rm", "--network", "container:base", "box:1", "sh", "-c",
             "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://127.0.0.1:8080/ && break;"
             " sleep 0.2; done; hostname").stdout.split()
    assert out == ["shared", _inspect(dy, "base")["Id"][:12]]
    dy("stop", "-t", "1", "base")
    refused = dy("run", "--rm", "--network", "container:base", "box:1", "true", check=False)
    assert "non running container" in refused.stderr


def test_udp_and_port_ranges(dy: Dockyard) -> None:
    first = free_port()
    udp_port = free_port()
    server = ("import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              "s.bind(('0.0.0.0', 9999)); "
              "exec('while True:\\n d, a = s.recvfrom(100)\\n s.sendto(b\"echo:\" + d, a)')")
    # the container borrows the host's python (read-only) for a UDP echo server
    dy("run", "-d", "--name", "udp", "-v", "/usr:/usr:ro", "-v", "/lib:/lib:ro",
       "-v", "/lib64:/lib64:ro", "-p", f"127.0.0.1:{udp_port}:9999/udp",
       "box:1", "/usr/bin/python3", "-c", server)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        reply = b""
        for _ in range(20):
            sock.sendto(b"ping", ("127.0.0.1", udp_port))
            try:
                reply = sock.recv(100)
                break
            except TimeoutError:
                continue
    assert reply == b"echo:ping"
    assert _inspect(dy, "udp")["NetworkSettings"]["Ports"]["9999/udp"] == [
        {"HostIp": "127.0.0.1", "HostPort": str(udp_port)}]
    second = first + 1
    if not _port_free(second):
        pytest.skip("two adjacent free ports were not found")
    dy("run", "-d", "--name", "ranges", "-p", f"127.0.0.1:{first}-{second}:8080-8081",
       "box:1", "sh", "-c", "httpd -p 8080 -h /etc; httpd -p 8081 -h /etc; "
       "echo one > /etc/one; sleep 60")
    ports = _inspect(dy, "ranges")["NetworkSettings"]["Ports"]
    assert ports["8081/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(second)}]
    assert _get(f"http://127.0.0.1:{second}/one") == "one\n"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_system_check_lists_network_orphans(dy: Dockyard) -> None:
    import sqlite3

    dy("network", "create", "orphans")
    dy("run", "-d", "--name", "member", "--network", "orphans", "box:1", "sleep", "60")
    assert dy("system", "check").returncode == 0
    # a crash between steps: the container's record vanishes, its lease and names stay
    container_id = _inspect(dy, "member")["Id"]
    dy("rm", "-f", "member")
    db = sqlite3.connect(dy.root / "metadata.db")
    with db:
        db.execute("INSERT INTO leases VALUES ('orphans', '10.215.99.9', ?, '[]')",
                   (container_id,))
    db.close()
    (dy.root / "run" / "networks").mkdir(exist_ok=True)
    (dy.root / "run" / "networks" / "gone.names").write_text("10.1.1.1\tabc\tghost\n")
    check = dy("system", "check", check=False)
    assert check.returncode == 1
    assert "lease 10.215.99.9 of removed container" in check.stdout + check.stderr
    assert "name table of removed network gone" in check.stdout + check.stderr
    dy("system", "check", "--repair", check=False)
    assert dy("system", "check").returncode == 0


def test_coexists_with_dockers_forward_drop(dy: Dockyard) -> None:
    """A host where Docker runs: FORWARD policy DROP, Docker's chains, and br_netfilter
    passing bridged frames through iptables.  Built in a throw-away network namespace
    (iptables rules and bridge sysctls are per namespace), so the host is untouched."""
    import subprocess
    import uuid

    namespace = f"dy-coexist-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    inside = Dockyard(dy.root, dy.root.parent / "docker-config")
    # nsenter, not `ip netns exec`: that one remounts /sys, and the cgroup mounts with it
    enter = ["nsenter", f"--net=/run/netns/{namespace}"]
    inside.argv = [*enter, *dy.argv]

    def sh(command: str) -> str:
        return subprocess.run([*enter, "sh", "-c", command], capture_output=True, text=True,
                              check=True).stdout

    try:
        sh("ip link set lo up; iptables -P FORWARD DROP; iptables -N DOCKER-USER; "
           "iptables -A DOCKER-USER -j RETURN; iptables -A FORWARD -j DOCKER-USER; "
           "if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then "
           "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables; fi")
        docker_rules = sh("iptables -S DOCKER-USER")
        port = free_port()
        inside("network", "create", "coexist")
        inside("run", "-d", "--name", "web", "--network", "coexist", "-p",
               f"127.0.0.1:{port}:8080", "box:1", "sh", "-c", HTTPD.format(text="coexisting"))
        out = inside("run", "--rm", "--network", "coexist", "box:1", "sh", "-c",
                     "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 3 wget -q -O - "
                     "http://web:8080/ && break; sleep 0.2; done").stdout
        assert out == "coexisting\n"
        fetched = sh(f"for i in 1 2 3 4 5 6 7 8 9 10; do "
                     f"python3 -c \"import urllib.request as u; print(u.urlopen("
                     f"'http://127.0.0.1:{port}/', timeout=2).read().decode(), end='')\" "
                     f"&& break; sleep 0.2; done")
        assert fetched == "coexisting\n"
        # Docker's chain and the policy are as Docker left them
        assert sh("iptables -S DOCKER-USER") == docker_rules
        assert "-P FORWARD DROP" in sh("iptables -S FORWARD")
        # and it is our chain's same-bridge ACCEPT that let the bridged traffic through
        from dockyard.network.firewall import chain_names

        if sh("cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null").strip() == "1":
            counters = sh(f"iptables -L {chain_names(str(dy.root))[0]} -v -n -x")
            same_bridge = [line for line in counters.splitlines()
                           if "ACCEPT" in line and line.split()[5] == line.split()[6]]
            assert same_bridge and int(same_bridge[0].split()[0]) > 0, counters
        inside("rm", "-f", "web")
        inside("network", "prune", "-f")
        assert "DY-" not in sh("iptables-save")
    finally:
        inside("rm", "-f", "web", check=False)
        subprocess.run(["ip", "netns", "del", namespace], check=False)


def test_dns_follows_a_runtime_connect(dy: Dockyard) -> None:
    """The only container on a network, connected while running: its own supervisor
    starts answering DNS there (no other supervisor on that network could)."""
    import subprocess

    dy("network", "create", "late")
    dy("run", "-d", "--name", "loner", "box:1", "sleep", "60")
    dy("network", "connect", "--alias", "found-me", "late", "loner")
    doc = _inspect(dy, "loner")
    gateway = doc["NetworkSettings"]["Networks"]["late"]["Gateway"]
    address = doc["NetworkSettings"]["Networks"]["late"]["IPAddress"]
    query = ("import socket, struct, sys\n"
             "q = struct.pack('!HHHHHH', 7, 0x0100, 1, 0, 0, 0) + b''.join("
             "bytes([len(p)]) + p.encode() for p in 'found-me'.split('.')) + b'\\0' + "
             "struct.pack('!HH', 1, 1)\n"
             "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)\n"
             f"s.sendto(q, ('{gateway}', 53)); r = s.recv(512)\n"
             "print(socket.inet_ntoa(r[-4:]))\n")
    answer = subprocess.run(["nsenter", f"--net=/proc/{doc['State']['Pid']}/ns/net",
                             sys.executable, "-c", query], capture_output=True, text=True,
                            timeout=30, check=False)
    assert answer.stdout.strip() == address, answer.stderr


def test_published_port_on_a_host_address_goes_through_dnat(dy: Dockyard) -> None:
    """Traffic to a host address (here the gateway of the test's own bridge) is DNATed
    by the kernel; the rules go with the container."""
    import subprocess

    from dockyard.network.firewall import port_chains

    dy("network", "create", "--subnet", "10.219.20.0/24", "pub")
    port = free_port()
    dy("run", "-d", "--name", "web", "--network", "pub", "-p", f"10.219.20.1:{port}:8080",
       "box:1", "sh", "-c", HTTPD.format(text="via-dnat"))
    assert _get(f"http://10.219.20.1:{port}/") == "via-dnat\n"
    outbound = port_chains(str(dy.root))[2]  # the kernel layout's (OUTPUT jumps to it)
    counters = subprocess.run(["iptables", "-t", "nat", "-L", outbound, "-v", "-n", "-x"],
                              capture_output=True, text=True, check=True).stdout
    dnat = [line for line in counters.splitlines() if "DNAT" in line and f"dpt:{port}" in line]
    assert dnat and int(dnat[0].split()[0]) > 0, counters
    dy("rm", "-f", "web")
    after = subprocess.run(["iptables", "-t", "nat", "-S", outbound], capture_output=True,
                           text=True, check=False).stdout
    assert f"--dport {port}" not in after


def test_engine_config_sets_the_default_subnet(dy: Dockyard) -> None:
    (dy.root / "engine.json").write_text(json.dumps({"bridge_subnet": "10.219.41.0/24"}))
    address = dy("run", "--rm", "box:1", "sh", "-c",
                 "grep eth0 /proc/net/fib_trie >/dev/null; hostname -i").stdout.strip()
    assert address.startswith("10.219.41."), address
    doc = json.loads(dy("network", "inspect", "bridge").stdout)[0]
    assert doc["IPAM"]["Config"][0]["Subnet"] == "10.219.41.0/24"


def test_network_rm_takes_its_bridge_and_rules_and_the_last_one_everything(
        dy: Dockyard) -> None:
    """A removal while another network remains: its bridge gone (one netlink call),
    the chains rebuilt without it (one iptables-restore); the last one: the chains,
    the port chains and every jump to them gone (one iptables-save, one restore)."""
    import subprocess

    from dockyard.network import firewall

    root = str(dy.root)
    filter_chain, nat_chain = firewall.chain_names(root)
    dy("network", "create", "keep")
    dy("network", "create", "drop")
    bridges = {name: _network(dy, name)["Options"]["com.docker.network.bridge.name"]
               for name in ("keep", "drop")}
    dy("run", "-d", "--name", "web", "--network", "keep", "-p", f"{free_port()}:80",
       "box:1", "sleep", "60")  # DNAT port chains made, on a host address too
    dy("rm", "-f", "web")

    def rules(table: str) -> str:
        return subprocess.run(["iptables-save", "-t", table], capture_output=True,
                              text=True, check=True).stdout

    dy("network", "rm", "drop")
    assert not Path(f"/sys/class/net/{bridges['drop']}").exists()
    assert Path(f"/sys/class/net/{bridges['keep']}").exists()
    assert bridges["drop"] not in rules("filter") and bridges["keep"] in rules("filter")
    assert f"-A FORWARD -j {filter_chain}" in rules("filter")
    dy("network", "rm", "keep")
    assert not Path(f"/sys/class/net/{bridges['keep']}").exists()
    tag = filter_chain
    assert tag not in rules("filter") and tag not in rules("nat"), (rules("filter"),
                                                                     rules("nat"))
    assert nat_chain not in rules("nat")
    assert dy("system", "check").returncode == 0


def _network(dy: Dockyard, name: str) -> dict[str, Any]:
    doc: list[dict[str, Any]] = json.loads(dy("network", "inspect", name).stdout)
    return doc[0]


def test_on_a_bridge_lo_and_eth0_are_up(dy: Dockyard) -> None:
    """Both links of a container on a bridge are up (set by ioctl, not netlink): their
    flags carry IFF_UP, and eth0 has its address and the default route."""
    out = dy("run", "--rm", "box:1", "sh", "-c",
             "cat /sys/class/net/lo/flags /sys/class/net/eth0/flags; ip -4 addr show eth0; "
             "ip route").stdout
    lines = out.splitlines()
    assert int(lines[0], 16) & 0x1 and int(lines[1], 16) & 0x1, out  # IFF_UP
    assert "inet " in out and "default via" in out, out


def _host_link(container_id: str) -> bool:
    return Path(f"/sys/class/net/dy{container_id[:10]}0").exists()


def test_an_ended_container_leaves_no_veth_even_while_its_namespace_lingers(
        dy: Dockyard) -> None:
    """The kernel deletes a container's veth pair when it dismantles the namespace, but
    that work is deferred and lags on a busy host; meanwhile the dead namespace still
    answers ARP for an address that may be leased again.  Holding the namespace open
    (as that lag does) the pair still goes: when the exit is handled, before a
    restart, and before ``rm -f`` answers."""
    container_id = dy("run", "-d", "--name", "held", "box:1", "sleep", "60").stdout.strip()
    pid = json.loads(dy("inspect", "held").stdout)[0]["State"]["Pid"]
    held = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        assert _host_link(container_id)
        dy("stop", "-t", "0", "held")
        deadline = time.monotonic() + 10
        while _host_link(container_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _host_link(container_id), "the stopped container's veth stayed"
        dy("start", "held")  # its own name again: no "File exists"
        assert _host_link(container_id)
        os.close(held)
        pid = json.loads(dy("inspect", "held").stdout)[0]["State"]["Pid"]
        held = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        dy("rm", "-f", "held")
        assert not _host_link(container_id), "rm -f answered with the veth still there"
    finally:
        os.close(held)


def test_a_restart_replaces_a_stale_pair_of_its_last_run(dy: Dockyard) -> None:
    """A restart (policy or ``start``) may come before the kernel took the pair of the
    run before: the stale pair, ours by its name, is deleted instead of the start
    failing on "File exists"."""
    container_id = dy("create", "--name", "stale", "box:1", "sleep", "60").stdout.strip()
    name = f"dy{container_id[:10]}0"
    lingering = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    try:
        time.sleep(0.2)
        subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", "eth0",
                        "netns", str(lingering.pid)], check=True)
        dy("start", "stale")
        out = subprocess.run(["ip", "-o", "link", "show", name], capture_output=True,
                             text=True, check=True).stdout
        assert "master" in out, out  # the new pair, a port of the bridge
        inner = subprocess.run(["nsenter", "-t", str(lingering.pid), "-n", "ip", "-o",
                                "link"], capture_output=True, text=True, check=True).stdout
        assert "eth0" not in inner, inner  # the stale pair went whole
    finally:
        lingering.kill()
        lingering.wait()
        dy("rm", "-f", "stale", check=False)


def test_the_bridge_keeps_its_mac_as_containers_come_and_go(dy: Dockyard) -> None:
    """A bridge left to itself takes the lowest MAC of its ports: a container leaving
    would change the gateway's MAC under its neighbours, whose replies then go to an
    address no one has until their ARP entries expire.  The bridge's address is set
    (as Docker sets it), and a bridge made without one (an older dockyard) gets its
    current address set on its next use."""
    dy("network", "create", "steady")
    bridge = json.loads(dy("network", "inspect", "steady").stdout)[0]["Options"][
        "com.docker.network.bridge.name"]
    sysfs = Path("/sys/class/net") / bridge
    dy("run", "-d", "--name", "first", "--network", "steady", "box:1", "sleep", "60")
    mac = (sysfs / "address").read_text()
    assert (sysfs / "addr_assign_type").read_text().strip() == "3"  # NET_ADDR_SET
    for name in ("second", "third"):
        dy("run", "-d", "--name", name, "--network", "steady", "box:1", "sleep", "60")
    dy("rm", "-f", "first", "second")
    assert (sysfs / "address").read_text() == mac
    dy("rm", "-f", "third")
    assert (sysfs / "address").read_text() == mac
    # a bridge of an older version: its address derived from its ports
    subprocess.run(["ip", "link", "del", bridge], check=True)
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    assert (sysfs / "addr_assign_type").read_text().strip() != "3"
    dy("run", "--rm", "--network", "steady", "box:1", "true")
    assert (sysfs / "addr_assign_type").read_text().strip() == "3"
    dy("network", "rm", "steady")


def test_chains_of_an_older_dockyard_are_made_anew_at_the_next_start(dy: Dockyard) -> None:
    """Bridges outlive an upgrade; their chains are rebuilt by the first start that finds
    them made by another version of the rules (the run dir's marker), so an upgrade's
    new rule (here: what else comes into an open bridge is dropped) is in force."""
    from dockyard.network import firewall

    dy("network", "create", "--subnet", "10.219.70.0/24", "kept")
    bridge = json.loads(dy("network", "inspect", "kept").stdout)[0]["Options"][
        "com.docker.network.bridge.name"]
    chain = firewall.chain_names(str(dy.root))[0]
    drop = f"-A {chain} -o {bridge} -j DROP"

    def listing() -> list[str]:
        return subprocess.run(["iptables", "-w", "-S", chain], capture_output=True,
                              text=True, check=True).stdout.splitlines()

    assert drop in listing()
    marker = dy.root / "run" / "firewall-rules"
    assert marker.read_text() == firewall.RULES_VERSION
    # as an older dockyard left them: without the rule, another version's marker
    subprocess.run(["iptables", "-w", "-D", chain, "-o", bridge, "-j", "DROP"], check=True)
    marker.write_text("1")
    dy("run", "--rm", "--network", "kept", "box:1", "true")
    assert drop in listing() and marker.read_text() == firewall.RULES_VERSION
    dy("network", "rm", "kept")
    assert not marker.exists()
