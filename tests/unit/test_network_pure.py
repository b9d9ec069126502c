"""Networking's pure parts: DNS codec and resolver, firewall plan, subnets, -p parsing."""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

import pytest

from dockyard.engine.flags import parse_publish
from dockyard.engine.spec import PortSpec
from dockyard.errors import InvalidArgument
from dockyard.network import dns, firewall, names
from dockyard.network.store import check_subnet, pick_subnet


def _query(name: str, qtype: int = dns.TYPE_A, ident: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\0" + \
        struct.pack("!HH", qtype, dns.CLASS_IN)


def test_dns_answers_known_names_and_refuses_garbage() -> None:
    server = dns.DnsServer(lambda name, client: ["10.215.0.9"] if name == "web" else [], [])
    reply = server.answer(_query("web"), "10.215.0.2")
    assert reply is not None
    ident, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (ident, qd, an) == (0x1234, 1, 1) and flags & 0x8000 and flags & 0x0100
    assert socket.inet_ntoa(reply[-4:]) == "10.215.0.9"
    # a known name asked for AAAA: no answer, no error (so resolvers fall back to A)
    aaaa = server.answer(_query("web", dns.TYPE_AAAA), "10.215.0.2")
    assert aaaa is not None and struct.unpack("!H", aaaa[6:8])[0] == 0
    # unknown and no upstream: SERVFAIL
    unknown = server.answer(_query("elsewhere.example"), "10.215.0.2")
    assert unknown is not None and struct.unpack("!H", unknown[2:4])[0] & 0xF == 2
    assert server.answer(b"\x00\x01", "10.215.0.2") is None
    assert dns.parse_question(_query("web")[:14]) is None  # truncated question


def test_resolver_answers_only_from_the_askers_networks(tmp_path: Path) -> None:
    names.publish(tmp_path / "front.names", "c1", "10.215.0.2", ("web", "c1short"))
    names.publish(tmp_path / "front.names", "c2", "10.215.0.3", ("client",))
    names.publish(tmp_path / "back.names", "c3", "10.215.1.2", ("db",))
    names.publish(tmp_path / "back.names", "c1", "10.215.1.3", ("web",))
    resolver = names.Resolver(tmp_path)
    assert resolver.lookup("WEB.", "10.215.0.3") == ["10.215.0.2"]
    assert resolver.lookup("db", "10.215.0.3") == []  # client is not on "back"
    assert sorted(resolver.lookup("web", "10.215.0.2")) == ["10.215.0.2", "10.215.1.3"]
    assert resolver.lookup("web", "10.99.0.1") == []  # a stranger learns nothing
    names.withdraw(tmp_path / "front.names", "c1")
    assert resolver.lookup("web", "10.215.0.3") == []


def test_firewall_plan_isolates_and_nats() -> None:
    text = firewall.plan("/root/a", [firewall.BridgeRules("dy-1", "10.215.0.0/24", False),
                                     firewall.BridgeRules("dy-2", "10.215.1.0/24", True)])
    chain, nat = firewall.chain_names("/root/a")
    assert firewall.chain_names("/root/b")[0] != chain
    lines = text.splitlines()
    assert f"-A {chain} -i dy-1 -o dy-1 -j ACCEPT" in lines
    assert f"-A {chain} -i dy-1 -o dy+ -j DROP" in lines
    assert f"-A {chain} -i dy-2 -j DROP" in lines and f"-A {chain} -o dy-2 -j DROP" in lines
    # out of the bridge: only the non-internal one's subnet is NATed
    assert [line for line in lines if "MASQUERADE" in line and "! -o" in line] == [
        f"-A {nat} -s 10.215.0.0/24 ! -o dy-1 -j MASQUERADE"]
    # same-bridge accept comes before the isolation drop for that bridge
    assert lines.index(f"-A {chain} -i dy-1 -o dy-1 -j ACCEPT") < \
        lines.index(f"-A {chain} -i dy-1 -o dy+ -j DROP")


def test_subnet_choice_skips_taken_and_host_routes() -> None:
    host = [ipaddress.IPv4Network("10.215.0.0/23")]
    assert pick_subnet(["10.215.2.0/24"], "10.215.0.0/16", host) == "10.215.3.0/24"
    with pytest.raises(InvalidArgument, match="non-overlapping"):
        pick_subnet(["10.215.0.0/24"], "10.215.0.0/24", [])
    assert check_subnet("10.30.0.0/24", None, []) == ("10.30.0.0/24", "10.30.0.1")
    with pytest.raises(InvalidArgument, match="overlaps"):
        check_subnet("10.30.0.0/16", None, ["10.30.5.0/24"])
    with pytest.raises(InvalidArgument, match="not a host address"):
        check_subnet("10.30.0.0/24", "10.30.0.255", [])


def test_publish_specs() -> None:
    assert parse_publish("8080") == [PortSpec("", 0, 8080, "tcp")]
    assert parse_publish("127.0.0.1:80:8080/udp") == [PortSpec("127.0.0.1", 80, 8080, "udp")]
    assert parse_publish("9000-9001:80-81") == [PortSpec("", 9000, 80, "tcp"),
                                                PortSpec("", 9001, 81, "tcp")]
    with pytest.raises(InvalidArgument, match="same size"):
        parse_publish("9000-9002:80-81")
    with pytest.raises(InvalidArgument, match="tcp or udp"):
        parse_publish("80/sctp")


def test_port_dnat_rules_in_the_proxy_layout_skip_loopback() -> None:
    """With ``userland_proxy`` (and for containers started before the kernel layout):
    loopback and IPv6 stay with the proxy, the host's other addresses are DNATed."""
    ports = [firewall.PublishedPort("", 8080, "tcp", "10.215.0.2", 80),
             firewall.PublishedPort("127.0.0.1", 9090, "tcp", "10.215.0.2", 90),
             firewall.PublishedPort("[::1]", 9091, "tcp", "10.215.0.2", 91),
             firewall.PublishedPort("10.215.0.1", 5353, "udp", "10.215.0.2", 53)]
    rules = firewall.port_rules_plan("/root/a", "abcdef1234567890", ports)
    inbound, outbound, _kernel = firewall.port_chains("/root/a")
    assert len(rules) == 4  # loopback-only 9090 and IPv6 9091 stay with the proxy
    assert rules[0] == (f"-A {inbound} -p tcp -m tcp --dport 8080 -m comment --comment "
                        "dy:abcdef123456 -j DNAT --to-destination 10.215.0.2:80")
    assert rules[3].startswith(f"-A {outbound} -d 10.215.0.1 -p udp -m udp --dport 5353")
    deletes = firewall.port_rules_plan("/root/a", "abcdef1234567890", ports, delete=True)
    assert all(rule.startswith("-D ") for rule in deletes)
    plan = firewall.plan("/root/a", [firewall.BridgeRules("dy-1", "10.215.0.0/24", False)])
    assert f"-A {firewall.chain_names('/root/a')[0]} -o dy-1 -m conntrack --ctstate DNAT " \
        "-j ACCEPT" in plan.splitlines()


def test_firewall_removal_is_one_batch_of_what_is_there() -> None:
    """The jumps to this root's chains (whatever their matches), then its chains; other
    roots' and Docker's rules untouched; nothing when none of ours is there."""
    ours, nat = firewall.chain_names("/root/a")
    dnat_in, dnat_out, _kernel = firewall.port_chains("/root/a")
    other = firewall.chain_names("/root/b")[0]
    saved = "\n".join([
        "# Generated by iptables-save", "*filter", ":INPUT ACCEPT [0:0]",
        ":FORWARD DROP [0:0]", f":{ours} - [0:0]", f":{other} - [0:0]", ":DOCKER - [0:0]",
        f"-A FORWARD -j {ours}", f"-A FORWARD -j {other}", "-A FORWARD -j DOCKER",
        f"-A {ours} -i dy-1 -o dy-1 -j ACCEPT", "COMMIT", "*nat", f":{nat} - [0:0]",
        f":{dnat_in} - [0:0]", f":{dnat_out} - [0:0]", f"-A POSTROUTING -j {nat}",
        f"-A PREROUTING -m addrtype --dst-type LOCAL -j {dnat_in}",
        f"-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {dnat_out}",
        f"-A {dnat_in} -i dy+ -j RETURN", "COMMIT", ""])
    assert firewall.removal_plan("/root/a", saved).splitlines() == [
        "*filter", f"-D FORWARD -j {ours}", f"-F {ours}", f"-X {ours}", "COMMIT",
        "*nat", f"-D POSTROUTING -j {nat}",
        f"-D PREROUTING -m addrtype --dst-type LOCAL -j {dnat_in}",
        f"-D OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {dnat_out}",
        f"-F {nat}", f"-F {dnat_in}", f"-F {dnat_out}", f"-X {nat}", f"-X {dnat_in}",
        f"-X {dnat_out}", "COMMIT"]
    assert firewall.removal_plan("/root/c", saved) == ""


def test_firewall_removal_takes_the_kernel_layouts_chains_too() -> None:
    raw, kernel = firewall.raw_chain("/root/a"), firewall.port_chains("/root/a")[2]
    saved = "\n".join([
        "*raw", ":PREROUTING ACCEPT [0:0]", f":{raw} - [0:0]", f"-A PREROUTING -j {raw}",
        f"-A {raw} -d 127.0.0.0/8 -i dy-1 -j DROP", "COMMIT", "*nat", f":{kernel} - [0:0]",
        f"-A PREROUTING ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {kernel}",
        f"-A OUTPUT -m addrtype --dst-type LOCAL -j {kernel}",
        f'-A {kernel} -p tcp -m tcp --dport 80 -m comment --comment "dy:abc" -j DNAT '
        "--to-destination 10.215.0.2:80", "COMMIT", ""])
    assert firewall.removal_plan("/root/a", saved).splitlines() == [
        "*raw", f"-D PREROUTING -j {raw}", f"-F {raw}", f"-X {raw}", "COMMIT",
        "*nat", f"-D PREROUTING ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {kernel}",
        f"-D OUTPUT -m addrtype --dst-type LOCAL -j {kernel}", f"-F {kernel}",
        f"-X {kernel}", "COMMIT"]


def test_port_dnat_rules_in_the_kernel_layout_take_loopback_too() -> None:
    ports = [firewall.PublishedPort("", 8080, "tcp", "10.215.0.2", 80),
             firewall.PublishedPort("127.0.0.1", 9090, "tcp", "10.215.0.2", 90),
             firewall.PublishedPort("[::1]", 9091, "tcp", "10.215.0.2", 91),
             firewall.PublishedPort("0.0.0.0", 5353, "udp", "10.215.0.2", 53)]
    chain = firewall.port_chains("/root/a")[2]
    assert firewall.port_rules_plan("/root/a", "abcdef1234567890", ports, kernel=True) == [
        f"-A {chain} -p tcp -m tcp --dport 8080 -m comment --comment dy:abcdef123456 "
        "-j DNAT --to-destination 10.215.0.2:80",
        f"-A {chain} -d 127.0.0.1 -p tcp -m tcp --dport 9090 -m comment --comment "
        "dy:abcdef123456 -j DNAT --to-destination 10.215.0.2:90",
        f"-A {chain} -p udp -m udp --dport 5353 -m comment --comment dy:abcdef123456 "
        "-j DNAT --to-destination 10.215.0.2:53"]  # (IPv6: the proxy's)


def test_firewall_plan_guards_loopback_and_lets_dnat_cross_bridges() -> None:
    text = firewall.plan("/root/a", [firewall.BridgeRules("dy-1", "10.215.0.0/24", False),
                                     firewall.BridgeRules("dy-2", "10.215.1.0/24", False),
                                     firewall.BridgeRules("dy-3", "10.215.2.0/24", True)])
    lines = text.splitlines()
    chain, nat = firewall.chain_names("/root/a")
    raw = firewall.raw_chain("/root/a")
    for bridge in ("dy-1", "dy-2", "dy-3"):  # route_localnet on them is guarded
        assert f"-A {raw} -d 127.0.0.0/8 -i {bridge} -j DROP" in lines
        assert f"-A {raw} -s 127.0.0.0/8 -i {bridge} -j DROP" in lines
        assert f"-A {nat} -s 127.0.0.0/8 -o {bridge} -j MASQUERADE" in lines
    assert f"-A {nat} -s 10.215.0.0/24 -o dy-1 -m conntrack --ctstate DNAT -j MASQUERADE" \
        in lines  # hairpin
    # a DNATed connection (and its replies) may cross bridges; the isolation drops come
    # after; nothing enters or leaves an internal network
    dnat_in = lines.index(f"-A {chain} -o dy-2 -m conntrack --ctstate DNAT -j ACCEPT")
    replies = lines.index(f"-A {chain} -o dy-1 -m conntrack --ctstate RELATED,ESTABLISHED "
                          "-j ACCEPT")
    assert max(dnat_in, replies) < lines.index(f"-A {chain} -i dy-1 -o dy+ -j DROP")
    assert lines.index(f"-A {chain} -i dy-3 -j DROP") < dnat_in
    assert not [line for line in lines if f"{chain} -o dy-3 -m conntrack" in line]
