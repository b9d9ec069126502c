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
                             "RELATED,ESTABLISHED -j ACCEPT"]
            nat_rules.append(f"-A {nat_chain} -s {rule.subnet} ! -o {b} -j MASQUERADE")
    return "\n".join(["*filter", f":{filter_chain} - [0:0]", *filter_rules, "COMMIT",
                      "*nat", f":{nat_chain} - [0:0]", *nat_rules, "COMMIT", ""])


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=False,
                          timeout=30)


def available() -> bool:
    return shutil.which("iptables") is not None and shutil.which("iptables-restore") is not None


def apply(root: str, bridges: list[BridgeRules]) -> None:
    """Make this root's chains match ``bridges``; with none left, remove them and their
    jumps, so nothing of ours stays behind."""
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
    for table, builtin, chain in (("filter", "FORWARD", filter_chain),
                                  ("nat", "POSTROUTING", nat_chain)):
        if _run(["iptables", "-w", "-t", table, "-C", builtin, "-j", chain]).returncode != 0:
            inserted = _run(["iptables", "-w", "-t", table, "-I", builtin, "1", "-j", chain])
            if inserted.returncode != 0:
                raise Unavailable(f"iptables: cannot add the jump to {chain}: "
                                  f"{inserted.stderr.strip()}")


def remove(root: str) -> None:
    for table, builtin, chain in zip(("filter", "nat"), ("FORWARD", "POSTROUTING"),
                                     chain_names(root), strict=True):
        while _run(["iptables", "-w", "-t", table, "-D", builtin, "-j", chain]).returncode == 0:
            pass
        _run(["iptables", "-w", "-t", table, "-F", chain])
        _run(["iptables", "-w", "-t", table, "-X", chain])


def present(root: str) -> bool:
    """Whether this root has chains on the host (``system check`` reports leftovers)."""
    if not available():
        return False
    return any(_run(["iptables", "-w", "-t", table, "-S", chain]).returncode == 0
               for table, chain in zip(("filter", "nat"), chain_names(root), strict=True))
