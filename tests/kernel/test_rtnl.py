"""``network.rtnl``: the requests a start on a bridge makes, checked against what
``ip`` and ``bridge`` read back, in a network namespace of the test's own (made by
``unshare -n`` around a child interpreter: it goes with the child)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.root

_SCRIPT = textwrap.dedent('''
    import socket, subprocess, sys, time
    from pyroute2 import IPRoute
    from dockyard.errors import InternalError
    from dockyard.network.rtnl import Rtnl

    with IPRoute() as ipr:  # (the bridge by pyroute2's own session: the reference)
        ipr.link("add", ifname="brt", kind="bridge")
        bridge = ipr.link_lookup(ifname="brt")[0]
    inner = subprocess.Popen(["unshare", "-n", "sleep", "30"])
    try:
        time.sleep(0.2)
        with Rtnl() as rtnl:
            rtnl.add_veth("vt0", "eth0", inner.pid, bridge)
            host = socket.if_nametoindex("vt0")
            rtnl.set_hairpin(host)
            rtnl.set_alias(host, "dockyard-test")
            try:
                rtnl.add_veth("vt0", "eth1", inner.pid, bridge)
            except InternalError as exc:
                print("refused:", exc)
        print(subprocess.run(["ip", "-o", "link", "show", "vt0"], capture_output=True,
                             text=True).stdout)
        print(subprocess.run(["bridge", "-d", "link", "show", "dev", "vt0"],
                             capture_output=True, text=True).stdout)
        inside = ["nsenter", "-t", str(inner.pid), "-n"]
        code = ("import socket; from dockyard.network.rtnl import Rtnl\\n"
                "with Rtnl() as r:\\n"
                "    r.add_address(socket.if_nametoindex('eth0'), '10.77.0.2', 24)\\n"
                "    from dockyard.network.linkup import set_up; set_up('eth0')\\n"
                "    r.add_default_route('10.77.0.1')\\n")
        subprocess.run([*inside, sys.executable, "-c", code], check=True)
        print(subprocess.run([*inside, "ip", "-4", "-o", "addr", "show", "eth0"],
                             capture_output=True, text=True).stdout)
        print(subprocess.run([*inside, "ip", "route"], capture_output=True, text=True).stdout)
    finally:
        inner.kill()
        inner.wait()
''')


def test_a_veth_pair_its_port_mode_address_and_route() -> None:
    done = subprocess.run(["unshare", "-n", sys.executable, "-c", _SCRIPT],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # born up, a port of the bridge, named; its peer in the inner namespace
    assert "vt0@" in out and "master brt" in out and ",UP" in out, out
    assert "alias dockyard-test" in out, out
    assert "hairpin on" in out, out
    # the same name again: refused, in words naming what was asked
    assert "refused: making the veth pair vt0: File exists" in out, out
    assert "inet 10.77.0.2/24" in out and "default via 10.77.0.1 dev eth0" in out, out
