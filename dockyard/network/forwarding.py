"""IP forwarding for routed networks, turned on as dockerd turns it on.

A container's traffic out of its bridge (to the world, to another network, back to a
published port through a host address) is routed by the host, and the host routes only
with ``net.ipv4.ip_forward`` set.  A fresh host often has it off.  dockerd (with its
default ``--ip-forward``) turns it on when it finds it off and, since moby's fix for
moby/moby#14041, sets the filter table's FORWARD policy to DROP in the same breath: a
host that did not route before must not start routing everything else too (another
host's traffic to a private LAN behind it, say).  dockyard does the same, with the same
rule for when: only when it is the one turning forwarding on; a host that already
forwards keeps its policy.

Order matters: the root's chains (``firewall``) already accept what its networks need,
then the policy turns to DROP, then forwarding goes on, so there is never a moment
when the host routes what it did not before.  Turning it back off is not done (as
dockerd does not): other engines, VMs or the user may rely on it by then.

The engine setting ``ip_forward`` (``DOCKYARD_IP_FORWARD``) false leaves both alone,
as dockerd's ``--ip-forward=false``; the test suite runs so, and tests the setting
itself in network namespaces of its own.
"""

from __future__ import annotations

import subprocess

from dockyard.errors import Unavailable

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def enabled(path: str = IP_FORWARD) -> bool:
    try:
        with open(path) as handle:
            return handle.read().strip() == "1"
    except OSError:
        return False


def forward_policy() -> str:
    """The filter table's FORWARD policy (``ACCEPT``, ``DROP``), "" when unknown."""
    listing = _iptables("-S", "FORWARD")
    for line in listing.stdout.splitlines():
        words = line.split()
        if words[:2] == ["-P", "FORWARD"] and len(words) == 3:
            return words[2]
    return ""


def ensure_enabled(path: str = IP_FORWARD) -> bool:
    """Forwarding on, with a FORWARD policy of DROP when it was off (see the module's
    doc); True when this call turned it on.  A host where it cannot be turned on (a
    read-only /proc/sys, as inside a container) is refused with what to do."""
    if enabled(path):
        return False
    policy = forward_policy()
    if not policy:  # (nothing changed yet: the policy must be known to be put back)
        raise Unavailable("cannot read the FORWARD policy (iptables -S FORWARD) before "
                          "turning IP forwarding on")
    if policy != "DROP":
        result = _iptables("-P", "FORWARD", "DROP")
        if result.returncode != 0:
            raise Unavailable("cannot set the FORWARD policy to DROP before turning IP "
                              f"forwarding on: {result.stderr.strip()}")
    try:
        with open(path, "w") as handle:
            handle.write("1\n")
    except OSError as exc:
        if policy != "DROP":  # as it was: this call changed nothing in the end
            _iptables("-P", "FORWARD", policy)
        raise Unavailable(
            f"cannot turn IP forwarding on ({path}: {exc.strerror}): containers on routed "
            "networks would reach nothing beyond their bridge. Turn it on for the host "
            "(sysctl -w net.ipv4.ip_forward=1) or set the engine setting ip_forward to "
            "false (DOCKYARD_IP_FORWARD=0) to run without it") from exc
    return True


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True,
                              check=False, timeout=30)
    except FileNotFoundError:
        return subprocess.CompletedProcess(["iptables"], 127, "", "iptables is not installed")
