"""The one network step the runtime takes: ``lo`` up in the network namespace its init
makes, when the config asks (``LOOPBACK_ANNOTATION``, dockyard's extension).

Docker's ``--network none`` leaves a container with ``lo`` up.  runc leaves that to
the engine, which joins the namespace from outside once the init exists (a setns
there and back, in a process of its own: ~1.5 ms of every such start here); the
init is in the namespace already, and two ioctls there cost microseconds
(``network.linkup``, the bridge's own way to set a link up).
"""

from __future__ import annotations

LOOPBACK_ANNOTATION = "org.dockyard.network.loopback"  # "up": the init sets lo up


def loopback_up() -> None:
    """``lo`` of the calling process's network namespace set up."""
    from dockyard.network.linkup import set_up

    set_up("lo")
