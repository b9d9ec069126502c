"""Helpers for the tests and the benchmarks.

Whatever imports them runs dockyard with the engine setting ``ip_forward`` false unless
it says otherwise: the host's IP forwarding and FORWARD policy are not a test's or a
benchmark's to change (a benchmark's bridge once left a host forwarding with a DROP
policy, which then dropped a private dockerd's bridged traffic).  Tests of the setting
run in network namespaces of their own (tests/kernel/test_port_publish.py).
"""

import os

os.environ.setdefault("DOCKYARD_IP_FORWARD", "0")
