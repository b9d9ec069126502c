"""Where a root's zygote listens, in a module light enough for every command to import.

The code a zygote has loaded is what every supervisor it forks — and every command
handed to it (``cli.warm``) — runs: after an upgrade (or an edit) a new zygote must
serve, so the socket name carries a stamp of that code; the old zygote keeps serving
its own containers under the old name and exits with the last of them.  The stamp is
the files' names, sizes and modification times (an installed tree's: its folders',
see ``code_stamp``) read as one number, modulo a prime:
it tells an edited tree from another (a change at one place never maps to the same
value), and is no digest.  Built-in arithmetic, not ``zlib`` (~0.3 ms of loading a
shared library on every command) nor ``hashlib`` (~3 ms of OpenSSL).
"""

import _socket  # (socket.py would import enum, selectors…: ~3 ms of a warm command)
import os

TYPE_CHECKING = False  # (no typing either: ~5 ms)
if TYPE_CHECKING:
    import socket
    from pathlib import Path

# the supervisor's own files, then packages whose code a preloaded exit hook
# (engine.exit_hook) or a warm command runs: stamped whole
_CODE = ("supervise/monitor.py", "supervise/zygote.py", "supervise/zygote_address.py",
         "supervise/command_parent.py",
         "supervise/iohub.py", "supervise/process.py", "supervise/helper.py",
         "supervise/driver.py", "supervise/health.py", "supervise/logfile.py")
_PACKAGES = ("engine", "store", "snapshots", "images", "volumes", "fs", "oci", "runtime",
             "cli", "network", "registry", "build", "compose")


_PRIME = (1 << 127) - 1  # a Mersenne prime
_INSTALLED_IN = ("site-packages", "dist-packages")


def code_stamp(package: str | None = None) -> str:
    """The stamp of the code under ``package`` (dockyard's own folder by default).

    An installed tree (in a site-packages) is stamped by its folders alone: an
    installer never edits a file where it lies — pip unlinks an old file before it
    writes the new one and moves an uninstalled version away, dpkg renames — so every
    change of an installed version changes a folder's modification time, and ~14
    stats tell it (stamping every file cost ~1.2 ms of each warm command).  A source
    tree (an editable install: a developer's editor may write a file in place) is
    stamped by each file's size and modification time."""
    if package is None:
        package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    if os.path.basename(os.path.dirname(package)) in _INSTALLED_IN:
        files = ["", "supervise", *_PACKAGES]
    else:
        files = list(_CODE)
        for name in _PACKAGES:
            try:
                with os.scandir(os.path.join(package, name)) as entries:
                    files += sorted(f"{name}/{e.name}" for e in entries
                                    if e.name.endswith(".py"))
            except OSError:
                continue
    parts = []
    for relative in files:
        try:
            info = os.stat(os.path.join(package, relative))
        except OSError:
            continue
        parts.append(f"{relative}:{info.st_ino}:{info.st_mtime_ns}:{info.st_size};")
    text = "".join(parts).encode()
    return f"{int.from_bytes(text, 'little') % _PRIME:032x}"


_STAMP = code_stamp()
SOCKET_NAME = f"zygote-{_STAMP}.sock"
# the zygote's command parent's (``supervise.command_parent.Listener``): a command
# handed over there directly skips a hop through the zygote
COMMANDS_SOCKET_NAME = f"commands-{_STAMP}.sock"


def path(dir_fd: int) -> str:
    """The socket's path through a descriptor of the run dir (a run dir's own path
    may be longer than a socket address takes)."""
    return f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}"


def connect_raw(run_dir: "Path | str",
                names: tuple[str, ...] = (SOCKET_NAME,)) -> _socket.socket | None:
    """A connection (the C-level socket: sendmsg, recv, close) to the first of the
    root's sockets ``names`` (the zygote's by default) that is listening, else None."""
    fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                sock.connect(f"/proc/self/fd/{fd}/{name}")
                return sock
            except OSError:
                sock.close()
        return None
    finally:
        os.close(fd)


def connect(run_dir: "Path | str") -> "socket.socket | None":
    """``connect_raw`` as a ``socket.socket`` (a context manager, buffered helpers)."""
    import socket

    raw = connect_raw(run_dir)
    return None if raw is None else socket.socket(fileno=raw.detach())
