"""The caller's side of a container terminal for foreground ``run``/``exec -t``.

Like runc without ``--console-socket``: listen on a private socket, receive the
pty master the init sends, copy bytes between our stdio and it, keep the window
size in step, and restore our terminal afterwards.
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import socket
import struct
import sys
import tempfile
import termios
import tty

from dockyard.stdlite import suppress


class TerminalReceiver:
    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="dockyard-tty-")
        self.path = os.path.join(self._dir, "console.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(1)
        self.master: int | None = None

    def _receive_master(self) -> int:
        from dockyard.runtime.linux.console import receive_fd

        if self.master is None:
            self._listener.settimeout(10)
            conn, _ = self._listener.accept()
            with conn:
                self.master = receive_fd(conn)
        return self.master

    def proxy_until_exit(self, pid: int) -> None:
        master = self._receive_master()
        stdin = sys.stdin.fileno()
        saved = None
        if os.isatty(stdin):
            saved = termios.tcgetattr(stdin)
            tty.setraw(stdin)
            self._copy_size(stdin, master)
        try:
            self._pump(stdin, master)
        finally:
            if saved is not None:
                termios.tcsetattr(stdin, termios.TCSADRAIN, saved)

    @staticmethod
    def _copy_size(src: int, dst: int) -> None:
        with suppress(OSError):
            size = fcntl.ioctl(src, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
            fcntl.ioctl(dst, termios.TIOCSWINSZ, size)

    @staticmethod
    def _pump(stdin: int, master: int) -> None:
        stdout = sys.stdout.fileno()
        inputs = [master, stdin]
        while True:
            try:
                ready, _, _ = select.select(inputs, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return  # EIO: the last process holding the slave exited
                if not data:
                    return
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if data:
                    os.write(master, data)
                else:
                    inputs.remove(stdin)

    def close(self) -> None:
        self._listener.close()
        if self.master is not None:
            os.close(self.master)
        shutil.rmtree(self._dir, ignore_errors=True)
