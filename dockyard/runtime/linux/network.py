"""The one network step the runtime takes: ``lo`` up in the network namespace its init
makes, when the config asks (``LOOPBACK_ANNOTATION``, dockyard's extension).

Docker's ``--network none`` leaves a container with ``lo`` up.  runc leaves that to
the engine, which joins the namespace from outside once the init exists (a setns
there and back, in a process of its own: ~1.5 ms of every such start here); the
init is in the namespace already, and two ioctls there cost microseconds.  No import
beyond the interpreter's built-ins (``_socket``, ``fcntl``): the runtime's start path
loads nothing it can do without (``tests/kernel/test_runtime_lean.py``).
"""

from __future__ import annotations

LOOPBACK_ANNOTATION = "org.dockyard.network.loopback"  # "up": the init sets lo up

_SIOCGIFFLAGS, _SIOCSIFFLAGS = 0x8913, 0x8914
_IFF_UP = 0x1


def loopback_up() -> None:
    """``lo`` of the calling process's network namespace set up (its flags read, then
    written with IFF_UP: struct ifreq is the name in 16 bytes, then ifr_flags)."""
    import _socket
    import fcntl

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        request = b"lo".ljust(16, b"\0") + bytes(24)
        current = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request)
        flags = int.from_bytes(current[16:18], "little") | _IFF_UP
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS,
                    current[:16] + flags.to_bytes(2, "little") + current[18:])
    finally:
        sock.close()
