"""A link of the calling thread's network namespace set up, by two ioctls (its flags
read, then written with IFF_UP), where a netlink request through pyroute2 cost ~1-2 ms
of CPU.  Built-in modules only (``_socket``, ``fcntl``): the runtime's init calls this
on a container's start path (``runtime.linux.network``), which imports nothing it can
do without (``tests/kernel/test_runtime_lean.py``)."""

from __future__ import annotations

_SIOCGIFFLAGS, _SIOCSIFFLAGS = 0x8913, 0x8914
_IFF_UP = 0x1


def set_up(name: str) -> None:
    """``name`` up (struct ifreq: the name in 16 bytes, then ifr_flags)."""
    import _socket
    import fcntl

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        current = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS,
                              name.encode().ljust(16, b"\0") + bytes(24))
        flags = int.from_bytes(current[16:18], "little") | _IFF_UP
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS,
                    current[:16] + flags.to_bytes(2, "little") + current[18:])
    finally:
        sock.close()
