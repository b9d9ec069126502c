"""Foreground ``run``/``exec`` of a container with a user namespace: pipes of its own.

Our stdio belongs to our caller (a file, a terminal, a socket), owned by the host's
root: the mapped root could write to the descriptors it inherits but not reopen
them (``echo > /dev/stdout``, a log file linked to /dev/stderr).  runc's foreground
``run`` and ``exec`` give the container new pipes owned by its root and copy
between them and their own stdio; so does this.  Detached containers keep the
caller's descriptors, as under runc.
"""

from __future__ import annotations

import os
import select
import sys

from dockyard.oci.runtime_spec import Linux
from dockyard.stdlite import suppress


def host_root(linux: Linux) -> tuple[int, int] | None:
    """Host uid and gid of the container's root, when the config maps them."""
    if linux.namespace("user") is None:
        return None
    ids = []
    for mappings in (linux.uid_mappings, linux.gid_mappings):
        found = [m.host_id - m.container_id for m in mappings
                 if m.container_id <= 0 < m.container_id + m.size]
        if not found:
            return None
        ids.append(found[0])
    return ids[0], ids[1]


class PipeRelay:
    def __init__(self, uid: int, gid: int) -> None:
        self._in_r, self._in_w = os.pipe()
        self._out_r, self._out_w = os.pipe()
        self._err_r, self._err_w = os.pipe()
        for fd in (self._in_r, self._out_w, self._err_w):
            os.fchown(fd, uid, gid)

    def container_ends(self) -> tuple[int, int, int]:
        """fds 0-2 for the container's process (its init or exec'd process)."""
        return self._in_r, self._out_w, self._err_w

    def close_container_ends(self) -> None:
        """Once the process has them: EOF then comes when the container's last
        holder exits."""
        for name in ("_in_r", "_out_w", "_err_w"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def pump_until_exit(self, pid: int) -> None:
        """Copy our stdin in and the container's output out until its output ends,
        or ``pid`` exited and what it left is read."""
        stdin, stdout, stderr = sys.stdin.fileno(), sys.stdout.fileno(), sys.stderr.fileno()
        outputs = {self._out_r: stdout, self._err_r: stderr}
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            pidfd = -1
        watched = [*outputs, stdin] + ([pidfd] if pidfd >= 0 else [])
        exited = pidfd < 0
        try:
            while outputs:
                ready, _, _ = select.select(watched, [], [], 0 if exited else None)
                if not ready:
                    return  # exited, and nothing more is waiting
                for fd in ready:
                    if fd == pidfd:
                        exited = True
                        watched.remove(fd)
                    elif fd == stdin:
                        self._copy_in(stdin, watched)
                    else:
                        data = os.read(fd, 65536)
                        if data:
                            _write_all(outputs[fd], data)
                        else:
                            del outputs[fd]
                            watched.remove(fd)
        finally:
            if pidfd >= 0:
                os.close(pidfd)

    def _copy_in(self, stdin: int, watched: list[int]) -> None:
        data = b""
        with suppress(OSError):
            data = os.read(stdin, 65536)
        if data and self._in_w >= 0:
            try:
                _write_all(self._in_w, data)
                return
            except BrokenPipeError:
                pass
        watched.remove(stdin)
        if self._in_w >= 0:
            os.close(self._in_w)
            self._in_w = -1

    def close(self) -> None:
        self.close_container_ends()
        for name in ("_in_w", "_out_r", "_err_r"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
