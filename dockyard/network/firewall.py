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
  nothing else in (as dockerd's ``! -i B -o B -j DROP``: a host that routes, with
  any FORWARD policy, does not open unpublished ports to its LAN), and a MASQUERADE
  for the subnet leaving by any other interface;
* connections DNATed to a published port (and their replies) may cross from one
  dockyard bridge to another, as they could through a userland proxy; a connection
  DNATed back onto the bridge it came from (hairpin) is MASQUERADEd, and so is one
  from 127.0.0.0/8 leaving by B (a published port reached on loopback, which needs
  ``route_localnet`` on B: see the published ports below);
* in the raw table (``DY-<root>-RAW``, jumped from PREROUTING), packets arriving on
  B from or to 127.0.0.0/8 are dropped: with ``route_localnet`` on, the kernel would
  otherwise let a container reach the host's loopback-only services through B.  (The
  replies of a loopback connection carry the bridge's address until nat PREROUTING
  undoes the MASQUERADE, after raw: they pass.)
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from typing import NamedTuple

from dockyard.errors import Unavailable

# What ``plan`` makes, by version: a root's chains made by another are made anew at the
# next start (``NetworkService.ensure_up``).  2: open bridges drop what else comes in.
RULES_VERSION = "2"


class BridgeRules(NamedTuple):
    bridge: str
    subnet: str
    internal: bool


def chain_names(root: str) -> tuple[str, str]:
    tag = hashlib.sha1(root.encode()).hexdigest()[:8]
    return f"DY-{tag}", f"DY-{tag}-NAT"


def raw_chain(root: str) -> str:
    """The raw-table chain of the loopback guard (see the module's doc)."""
    return f"{chain_names(root)[0]}-RAW"


LOOPBACK = "127.0.0.0/8"


def guard_rules(root: str, bridge: str) -> list[str]:
    """The raw chain's rules for one bridge (written as ``iptables -S`` prints them)."""
    chain = raw_chain(root)
    return [f"-A {chain} -s {LOOPBACK} -i {bridge} -j DROP",
            f"-A {chain} -d {LOOPBACK} -i {bridge} -j DROP"]


def kernel_nat_rules(root: str, bridge: str, subnet: str) -> list[str]:
    """The nat chain's rules for one bridge that published ports routed by the kernel
    need: loopback clients and hairpin connections leave by the bridge MASQUERADEd to
    its address, so the container's replies come back through the host."""
    chain = chain_names(root)[1]
    return [f"-A {chain} -s {LOOPBACK} -o {bridge} -j MASQUERADE",
            f"-A {chain} -s {subnet} -o {bridge} -m conntrack --ctstate DNAT -j MASQUERADE"]


def plan(root: str, bridges: Iterable[BridgeRules]) -> str:
    """The iptables-restore input that makes this root's chains what they should be."""
    filter_chain, nat_chain = chain_names(root)
    ordered = sorted(bridges)
    open_ = [rule for rule in ordered if not rule.internal]
    # first what a packet between two bridges may do, then the isolation drops
    filter_rules = [f"-A {filter_chain} -i {r.bridge} -o {r.bridge} -j ACCEPT" for r in ordered]
    for rule in ordered:
        if rule.internal:
            filter_rules += [f"-A {filter_chain} -i {rule.bridge} -j DROP",
                             f"-A {filter_chain} -o {rule.bridge} -j DROP"]
    for rule in open_:  # published ports (DNAT) from anywhere, and what was let in;
        # nothing else comes in from outside, whatever the FORWARD policy (a LAN host
        # routing through this one reaches no unpublished port)
        filter_rules += [f"-A {filter_chain} -o {rule.bridge} -m conntrack --ctstate DNAT "
                         "-j ACCEPT",
                         f"-A {filter_chain} -o {rule.bridge} -m conntrack --ctstate "
                         "RELATED,ESTABLISHED -j ACCEPT",
                         f"-A {filter_chain} -o {rule.bridge} -j DROP"]
    for rule in open_:
        filter_rules += [f"-A {filter_chain} -i {rule.bridge} -o dy+ -j DROP",
                         f"-A {filter_chain} -i {rule.bridge} -o dockyard+ -j DROP",
                         f"-A {filter_chain} -i {rule.bridge} -j ACCEPT"]
    nat_rules: list[str] = []
    raw_rules: list[str] = []
    for rule in ordered:
        nat_rules += kernel_nat_rules(root, rule.bridge, rule.subnet)
        if not rule.internal:
            nat_rules.append(f"-A {nat_chain} -s {rule.subnet} ! -o {rule.bridge} "
                             "-j MASQUERADE")
        raw_rules += guard_rules(root, rule.bridge)
    return "\n".join(["*raw", f":{raw_chain(root)} - [0:0]", *raw_rules, "COMMIT",
                      "*filter", f":{filter_chain} - [0:0]", *filter_rules, "COMMIT",
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
                                  ("nat", "POSTROUTING", nat_chain),
                                  ("raw", "PREROUTING", raw_chain(root))):
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
    ours = {*chain_names(root), raw_chain(root), *port_chains(root)}
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
    for table, builtin, chain in zip(("filter", "nat", "raw"),
                                     ("FORWARD", "POSTROUTING", "PREROUTING"),
                                     (*chain_names(root), raw_chain(root)), strict=True):
        while _run(["iptables", "-w", "-t", table, "-D", builtin, "-j", chain]).returncode == 0:
            pass
        _run(["iptables", "-w", "-t", table, "-F", chain])
        _run(["iptables", "-w", "-t", table, "-X", chain])


def existing_chains(root: str) -> list[str]:
    """This root's chains that are on the host (all are named after its path, so they
    are found also once the root's directory is gone)."""
    if not available():
        return []
    chains = [("filter", chain_names(root)[0]), ("nat", chain_names(root)[1]),
              ("raw", raw_chain(root))] + [("nat", chain) for chain in port_chains(root)]
    return [chain for table, chain in chains
            if _run(["iptables", "-w", "-t", table, "-S", chain]).returncode == 0]


def present(root: str) -> bool:
    """Whether this root has chains on the host (``system check`` reports leftovers)."""
    return bool(existing_chains(root))


# --- published ports --------------------------------------------------------------
# Two layouts, as dockerd's two settings of ``userland-proxy``:
#
# * the kernel's (the default): every IPv4 published port is DNATed, by one chain
#   ``DY-<root>-DNAT`` jumped from nat OUTPUT for every local destination (127.0.0.1
#   too) and from nat PREROUTING for local destinations outside 127.0.0.0/8 (a packet
#   from the network addressed to 127.0.0.1 is never let through); containers reaching
#   a published port through a host address are DNATed too (hairpin: their bridge port
#   is put in hairpin mode, and the nat chain MASQUERADEs the connection, see
#   ``kernel_nat_rules``).  Loopback clients need ``route_localnet`` on the container's
#   bridge (turned on by ``publish_ports``, only on this root's bridges, once the raw
#   chain guards them).  The supervisor only binds the ports (so a taken port still
#   fails before the start) and relays nothing (figures: README, bench/network.py).
# * the proxy's (``userland_proxy``): the supervisor's proxy serves 127.0.0.1 and other
#   containers; traffic to the host's other addresses is DNATed by ``DY-<root>-DNAT-IN``
#   (PREROUTING, containers' bridges RETURNed to the proxy) and ``-DNAT-OUT`` (OUTPUT,
#   outside 127.0.0.0/8).  Containers started before the kernel layout existed have
#   their rules there; both layouts live side by side.
#
# IPv6 host addresses (``-p [::1]:8080:80``) always go through the proxy: there is no
# ``route_localnet`` for ::1.  Rules carry a comment with the container's ID, so they
# are found and removed by it.


class PublishedPort(NamedTuple):
    host_ip: str  # "" for every address
    host_port: int
    protocol: str
    target_ip: str
    target_port: int


def is_ipv6(host_ip: str) -> bool:
    return ":" in host_ip


def port_chains(root: str) -> tuple[str, str, str]:
    """The nat chains of published ports: (the proxy layout's chain jumped from
    PREROUTING, its chain jumped from OUTPUT, the kernel layout's chain)."""
    tag = chain_names(root)[0]
    return f"{tag}-DNAT-IN", f"{tag}-DNAT-OUT", f"{tag}-DNAT"


def _jumps(root: str) -> list[tuple[str, str, list[str]]]:
    """(builtin chain, our chain, the match before ``-j``) of every jump into the port
    chains, written as ``iptables -S`` prints them."""
    inbound, outbound, kernel = port_chains(root)
    local = ["-m", "addrtype", "--dst-type", "LOCAL"]
    return [("PREROUTING", inbound, local),
            ("OUTPUT", outbound, ["!", "-d", LOOPBACK, *local]),
            ("PREROUTING", kernel, ["!", "-d", LOOPBACK, *local]),
            ("OUTPUT", kernel, local)]


def port_rules_plan(root: str, container_id: str, ports: Iterable[PublishedPort],
                    *, kernel: bool = False, delete: bool = False) -> list[str]:
    """The container's DNAT rules in the kernel layout (``kernel``) or the proxy's."""
    inbound, outbound, kernel_chain = port_chains(root)
    verb = "-D" if delete else "-A"
    rules = []
    for port in ports:
        if is_ipv6(port.host_ip) or (not kernel and port.host_ip.startswith("127.")):
            continue  # the proxy serves it
        match = (f"{'-d ' + port.host_ip + ' ' if port.host_ip not in ('', '0.0.0.0') else ''}"
                 f"-p {port.protocol} -m {port.protocol} --dport {port.host_port} "
                 f"-m comment --comment dy:{container_id[:12]} "
                 f"-j DNAT --to-destination {port.target_ip}:{port.target_port}")
        rules += [f"{verb} {kernel_chain} {match}"] if kernel else [
            f"{verb} {inbound} {match}", f"{verb} {outbound} {match}"]
    return rules


def _new_chain(table: str, chain: str, listing: list[str]) -> bool:
    """Make ``chain`` unless ``listing`` (the table as ``iptables -S`` prints it) has it;
    True when made here.  Not in a restore's ``:CHAIN`` line, which would flush it if
    another supervisor made it (and put its rules in) meanwhile."""
    if f"-N {chain}" in listing:
        return False
    return _run(["iptables", "-w", "-t", table, "-N", chain]).returncode == 0


def _missing_port_chains(root: str, kernel: bool, nat: list[str]) -> list[str]:
    """Make the layout's chains that ``nat`` (the table as listed) lacks; the restore
    lines adding their missing jumps (and a new proxy-layout inbound chain's RETURNs)."""
    inbound, outbound, kernel_chain = port_chains(root)
    lines = []
    wanted = [kernel_chain] if kernel else [inbound, outbound]
    for chain in wanted:
        if _new_chain("nat", chain, nat) and chain == inbound:
            # containers' own traffic goes to the proxy
            lines += [f"-A {inbound} -i dy+ -j RETURN", f"-A {inbound} -i dockyard+ -j RETURN"]
    for builtin, chain, match in _jumps(root):
        if chain in wanted and f"-A {builtin} {' '.join(match)} -j {chain}" not in nat:
            lines.append(f"-I {builtin} 1 {' '.join(match)} -j {chain}")
    return lines


def _list(table: str) -> list[str]:
    return _run(["iptables", "-w", "-t", table, "-S"]).stdout.splitlines()


def _restore(lines: list[str]) -> None:
    result = _run(["iptables-restore", "--noflush", "-w"], "\n".join([*lines, ""]))
    if result.returncode != 0:
        raise Unavailable(f"iptables-restore failed: {result.stderr.strip()}")


def route_localnet_path(bridge: str) -> str:
    """The bridge's ``route_localnet`` (in the caller's network namespace)."""
    return f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet"


def _localnet_on(bridge: str) -> bool:
    try:
        with open(route_localnet_path(bridge)) as handle:
            return handle.read().strip() == "1"
    except OSError:
        return False


def _bridge_lines(root: str, bridge: str, subnet: str,
                  nat: list[str]) -> tuple[list[str], list[str]]:
    """(raw, nat) restore lines adding what the kernel layout needs on ``bridge`` and the
    root's chains lack: the chains made by an older dockyard have none of it until
    their networks change (``plan`` has it all)."""
    raw = _list("raw")
    chain = raw_chain(root)
    _new_chain("raw", chain, raw)
    raw_lines = [rule for rule in guard_rules(root, bridge) if rule not in raw]
    if f"-A PREROUTING -j {chain}" not in raw:
        raw_lines.append(f"-I PREROUTING 1 -j {chain}")
    nat_lines = [rule for rule in kernel_nat_rules(root, bridge, subnet) if rule not in nat]
    return raw_lines, nat_lines


def publish_ports(root: str, container_id: str, ports: list[PublishedPort], *,
                  kernel: bool = False, bridge: str = "", subnet: str = "") -> None:
    """Add the container's DNAT rules (and the layout's chains if missing).  In the
    kernel layout ``bridge`` (with ``subnet``) is the one the ports lead to: its
    ``route_localnet`` is turned on, once the raw chain guards it."""
    rules = port_rules_plan(root, container_id, ports, kernel=kernel)
    if not rules or not available():
        return
    nat = _list("nat")
    nat_lines = _missing_port_chains(root, kernel, nat)
    raw_lines: list[str] = []
    prepare = kernel and bridge != "" and not _localnet_on(bridge)
    if prepare:  # (once on: this bridge's rules were checked, or made by ``plan``)
        raw_lines, more = _bridge_lines(root, bridge, subnet, nat)
        nat_lines += more
    _restore([*(["*raw", *raw_lines, "COMMIT"] if raw_lines else []),
              "*nat", *nat_lines, *rules, "COMMIT"])
    if prepare:
        try:
            with open(route_localnet_path(bridge), "w") as handle:
                handle.write("1")
        except OSError as exc:
            raise Unavailable(f"cannot turn on route_localnet on {bridge}: "
                              f"{exc.strerror}") from exc


def _tagged(root: str, container_id: str, nat: list[str]) -> list[list[str]]:
    chains = port_chains(root)
    tag = f"dy:{container_id[:12]}"
    found = []
    for line in nat:
        words = shlex.split(line)  # the comment is printed quoted
        if len(words) > 2 and words[0] == "-A" and words[1] in chains and tag in words:
            found.append(words)
    return found


def unpublish_ports(root: str, container_id: str) -> None:
    """Remove every DNAT rule of the container (whatever its ports and layout were)."""
    if not available():
        return
    rules = _tagged(root, container_id, _list("nat"))
    if not rules:
        return
    batch = ["*nat", *(" ".join(["-D", *words[1:]]) for words in rules), "COMMIT", ""]
    if _run(["iptables-restore", "--noflush", "-w"], "\n".join(batch)).returncode != 0:
        for words in rules:  # one went meanwhile (another party withdrew it): one by one
            _run(["iptables", "-w", "-t", "nat", "-D", *words[1:]])


def remove_port_chains(root: str) -> None:
    for builtin, chain, match in _jumps(root):
        while _run(["iptables", "-w", "-t", "nat", "-D", builtin, *match, "-j", chain]
                   ).returncode == 0:
            pass
    for chain in port_chains(root):
        _run(["iptables", "-w", "-t", "nat", "-F", chain])
        _run(["iptables", "-w", "-t", "nat", "-X", chain])


def published_containers(root: str) -> set[str]:
    """Short IDs of the containers that have DNAT rules in this root's port chains."""
    found: set[str] = set()
    if not available():
        return found
    chains = port_chains(root)
    for line in _list("nat"):
        words = shlex.split(line)
        if len(words) > 2 and words[0] == "-A" and words[1] in chains:
            found |= {w[3:] for w in words if w.startswith("dy:")}
    return found
