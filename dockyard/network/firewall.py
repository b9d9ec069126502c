"""Forwarding rules for this root's bridges, in chains of dockyard's own.

Why iptables (here the nf_tables backend) and not a separate nft table: in
nftables every base chain on a hook votes and a drop anywhere wins, so an accept
in our own table could not let bridge traffic through on a host where Docker has
set the FORWARD policy to DROP.  Like Docker and libvirt we put one jump at the
top of the kernel's built-in FORWARD (and nat POSTROUTING) chain into a chain we
own; we never touch Docker's chains or any policy.

Per root (so instances and tests never rewrite each other's rules), two chains
``DY-<root>`` (filter) and ``DY-<root>-NAT`` (nat), rebuilt as a whole from this
root's networks with ``iptables-restore --noflush``; for each bridge B:

* B to B: accept (containers on one network talk; needed when br_netfilter sends
  bridged frames through FORWARD under a DROP policy);
* B to any other dockyard bridge (``dy+``, ``dockyard+``): drop (isolation);
* internal networks: nothing in or out; others: out accepted, replies back in,
  and a MASQUERADE for the subnet leaving by any other interface.

Published ports do not need rules: the userland proxy connects from the host.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from typing import NamedTuple

from dockyard.errors import Unavailable


class BridgeRules(NamedTuple):
    bridge: str
    subnet: str
    internal: bool


def chain_names(root: str) -> tuple[str, str]:
    tag = hashlib.sha1(root.encode()).hexdigest()[:8]
    return f"DY-{tag}", f"DY-{tag}-NAT"


def plan(root: str, bridges: Iterable[BridgeRules]) -> str:
    """The iptables-restore input that makes this root's chains what they should be."""
    filter_chain, nat_chain = chain_names(root)
    filter_rules: list[str] = []
    nat_rules: list[str] = []
    for rule in sorted(bridges):
        b = rule.bridge
        filter_rules += [f"-A {filter_chain} -i {b} -o {b} -j ACCEPT",
                         f"-A {filter_chain} -i {b} -o dy+ -j DROP",
                         f"-A {filter_chain} -i {b} -o dockyard+ -j DROP"]
        if rule.internal:
            filter_rules += [f"-A {filter_chain} -i {b} -j DROP",
                             f"-A {filter_chain} -o {b} -j DROP"]
        else:
            filter_rules += [f"-A {filter_chain} -i {b} -j ACCEPT",
                             f"-A {filter_chain} -o {b} -m conntrack --ctstate "
                             "RELATED,ESTABLISHED -j ACCEPT",
                             f"-A {filter_chain} -o {b} -m conntrack --ctstate DNAT -j ACCEPT"]
            nat_rules.append(f"-A {nat_chain} -s {rule.subnet} ! -o {b} -j MASQUERADE")
    return "\n".join(["*filter", f":{filter_chain} - [0:0]", *filter_rules, "COMMIT",
                      "*nat", f":{nat_chain} - [0:0]", *nat_rules, "COMMIT", ""])


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=False,
                          timeout=30)


def available() -> bool:
    return shutil.which("iptables") is not None and shutil.which("iptables-restore") is not None


def apply(root: str, bridges: list[BridgeRules], *, ensure_jumps: bool = True) -> None:
    """Make this root's chains match ``bridges``; with none left, remove them and their
    jumps, so nothing of ours stays behind.  ``ensure_jumps`` False: the chains'
    jumps are known to be there (a network removed while others remain), so the
    rules are one ``iptables-restore``."""
    if not available():
        raise Unavailable("iptables is not installed (apt-get install iptables): needed to "
                          "isolate networks")
    filter_chain, nat_chain = chain_names(root)
    if not bridges:
        remove(root)
        return
    result = _run(["iptables-restore", "--noflush", "-w"], plan(root, bridges))
    if result.returncode != 0:
        raise Unavailable(f"iptables-restore failed: {result.stderr.strip()}")
    if not ensure_jumps:
        return
    for table, builtin, chain in (("filter", "FORWARD", filter_chain),
                                  ("nat", "POSTROUTING", nat_chain)):
        if _run(["iptables", "-w", "-t", table, "-C", builtin, "-j", chain]).returncode != 0:
            inserted = _run(["iptables", "-w", "-t", table, "-I", builtin, "1", "-j", chain])
            if inserted.returncode != 0:
                raise Unavailable(f"iptables: cannot add the jump to {chain}: "
                                  f"{inserted.stderr.strip()}")


def remove(root: str) -> None:
    """This root's chains and the jumps to them, gone: one ``iptables-save`` to see
    what is there and one ``iptables-restore`` batch that deletes it (rule by rule
    where the batch fails, e.g. a rule changed between the two)."""
    saved = _run(["iptables-save"]).stdout
    batch = removal_plan(root, saved)
    if batch and _run(["iptables-restore", "--noflush", "-w"], batch).returncode == 0:
        return
    _remove_one_by_one(root)


def removal_plan(root: str, saved: str) -> str:
    """The ``iptables-restore`` input that deletes, from what ``iptables-save`` printed,
    every jump to this root's chains and then the chains themselves ("" when none is
    there)."""
    ours = {*chain_names(root), *port_chains(root)}
    tables: dict[str, tuple[list[str], list[str]]] = {}  # table -> (jumps, chains)
    table = ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":") and line[1:].split(" ", 1)[0] in ours:
            tables.setdefault(table, ([], []))[1].append(line[1:].split(" ", 1)[0])
        elif line.startswith("-A ") and line.split(" ")[1] not in ours:
            words = line.split(" ")
            if "-j" in words and words[words.index("-j") + 1] in ours:
                tables.setdefault(table, ([], []))[0].append("-D " + line[3:])
    out = []
    for name, (jumps, chains) in tables.items():
        out += [f"*{name}", *jumps, *(f"-F {c}" for c in chains),
                *(f"-X {c}" for c in chains), "COMMIT"]
    return "\n".join([*out, ""]) if out else ""


def _remove_one_by_one(root: str) -> None:
    remove_port_chains(root)
    for table, builtin, chain in zip(("filter", "nat"), ("FORWARD", "POSTROUTING"),
                                     chain_names(root), strict=True):
        while _run(["iptables", "-w", "-t", table, "-D", builtin, "-j", chain]).returncode == 0:
            pass
        _run(["iptables", "-w", "-t", table, "-F", chain])
        _run(["iptables", "-w", "-t", table, "-X", chain])


def existing_chains(root: str) -> list[str]:
    """This root's chains that are on the host (all four are named after its path, so
    they are found also once the root's directory is gone)."""
    if not available():
        return []
    chains = [("filter", chain_names(root)[0]), ("nat", chain_names(root)[1])] + [
        ("nat", chain) for chain in port_chains(root)]
    return [chain for table, chain in chains
            if _run(["iptables", "-w", "-t", table, "-S", chain]).returncode == 0]


def present(root: str) -> bool:
    """Whether this root has chains on the host (``system check`` reports leftovers)."""
    return bool(existing_chains(root))


# --- published ports: DNAT for traffic that does not come over loopback ---------------
# The userland proxy binds every published port (so a taken port fails before the
# start, and 127.0.0.1 works without route_localnet); traffic to the host's other
# addresses is DNATed in the kernel instead, which carries it at ~0.95 of a direct
# connection against ~0.75 (throughput) and ~0.45 (connection rate) for the proxy
# (bench/network.py --dnat).  Traffic from containers keeps going through the proxy:
# DNAT back onto the same bridge would need a hairpin MASQUERADE per port.  Rules
# carry a comment with the container's ID, so they are found and removed by it.


class PublishedPort(NamedTuple):
    host_ip: str  # "" for every address
    host_port: int
    protocol: str
    target_ip: str
    target_port: int


def port_chains(root: str) -> tuple[str, str]:
    """(chain jumped from PREROUTING, chain jumped from OUTPUT), in the nat table."""
    tag = chain_names(root)[0]
    return f"{tag}-DNAT-IN", f"{tag}-DNAT-OUT"


def port_rules_plan(root: str, container_id: str, ports: Iterable[PublishedPort],
                    *, delete: bool = False) -> list[str]:
    inbound, outbound = port_chains(root)
    verb = "-D" if delete else "-A"
    rules = []
    for port in ports:
        if port.host_ip.startswith("127."):
            continue  # loopback only: the proxy serves it
        match = (f"{'-d ' + port.host_ip + ' ' if port.host_ip not in ('', '0.0.0.0') else ''}"
                 f"-p {port.protocol} -m {port.protocol} --dport {port.host_port} "
                 f"-m comment --comment dy:{container_id[:12]} "
                 f"-j DNAT --to-destination {port.target_ip}:{port.target_port}")
        rules += [f"{verb} {inbound} {match}", f"{verb} {outbound} {match}"]
    return rules


def _ensure_port_chains(root: str) -> None:
    inbound, outbound = port_chains(root)
    setup = ["*nat", f":{inbound} - [0:0]", f":{outbound} - [0:0]",
             f"-A {inbound} -i dy+ -j RETURN", f"-A {inbound} -i dockyard+ -j RETURN", "COMMIT",
             ""]
    if _run(["iptables", "-w", "-t", "nat", "-S", inbound]).returncode != 0:
        result = _run(["iptables-restore", "--noflush", "-w"], "\n".join(setup))
        if result.returncode != 0:
            raise Unavailable(f"iptables-restore failed: {result.stderr.strip()}")
    for builtin, chain, extra in (("PREROUTING", inbound, []),
                                  ("OUTPUT", outbound, ["!", "-d", "127.0.0.0/8"])):
        jump = [*extra, "-m", "addrtype", "--dst-type", "LOCAL", "-j", chain]
        if _run(["iptables", "-w", "-t", "nat", "-C", builtin, *jump]).returncode != 0:
            _run(["iptables", "-w", "-t", "nat", "-I", builtin, "1", *jump])


def publish_ports(root: str, container_id: str, ports: list[PublishedPort]) -> None:
    rules = port_rules_plan(root, container_id, ports)
    if not rules or not available():
        return
    _ensure_port_chains(root)
    result = _run(["iptables-restore", "--noflush", "-w"],
                  "\n".join(["*nat", *rules, "COMMIT", ""]))
    if result.returncode != 0:
        raise Unavailable(f"iptables-restore failed: {result.stderr.strip()}")


def unpublish_ports(root: str, container_id: str) -> None:
    """Remove every DNAT rule of the container (whatever its ports were)."""
    if not available():
        return
    inbound, outbound = port_chains(root)
    tag = f"dy:{container_id[:12]}"
    for chain in (inbound, outbound):
        listing = _run(["iptables", "-w", "-t", "nat", "-S", chain])
        for line in listing.stdout.splitlines():
            words = shlex.split(line)  # the comment is printed quoted
            if words[:2] == ["-A", chain] and tag in words:
                _run(["iptables", "-w", "-t", "nat", "-D", *words[1:]])


def remove_port_chains(root: str) -> None:
    for builtin, chain, extra in zip(("PREROUTING", "OUTPUT"), port_chains(root),
                                     ([], ["!", "-d", "127.0.0.0/8"]), strict=True):
        jump = [*extra, "-m", "addrtype", "--dst-type", "LOCAL", "-j", chain]
        while _run(["iptables", "-w", "-t", "nat", "-D", builtin, *jump]).returncode == 0:
            pass
        _run(["iptables", "-w", "-t", "nat", "-F", chain])
        _run(["iptables", "-w", "-t", "nat", "-X", chain])


def published_containers(root: str) -> set[str]:
    """Short IDs of the containers that have DNAT rules in this root's port chains."""
    found: set[str] = set()
    if not available():
        return found
    for chain in port_chains(root):
        listing = _run(["iptables", "-w", "-t", "nat", "-S", chain])
        for line in listing.stdout.splitlines():
            found |= {w[3:] for w in shlex.split(line) if w.startswith("dy:")}
    return found
