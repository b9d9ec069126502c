"""``supervise.command_parent``'s requests on a socket pair: what ``_send`` writes,
``_receive`` reads whole (bytes and descriptors), and a request sent whole is not
followed by another send — a spare that read it and closed its end at once made an
empty ``sendall`` say EPIPE, and the command parent then forked a second worker for
a command the spare was already running."""

from __future__ import annotations

import os
import socket
from typing import Any

from dockyard.supervise.command_parent import _receive, _send


class _PeerReadsAndCloses(socket.socket):
    """Our end of a pair whose peer reads a whole request and closes as soon as the
    first ``sendmsg`` returns (the spare's side, at its fastest)."""

    peer: socket.socket
    received: tuple[bytes, list[int]] | None = None

    def sendmsg(self, *args: Any, **kwargs: Any) -> int:
        sent = super().sendmsg(*args, **kwargs)
        self.received = _receive(self.peer)
        self.peer.close()
        return sent


def test_a_request_sent_whole_is_sent_once() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sender = _PeerReadsAndCloses(fileno=ours.detach())
    sender.peer = theirs
    read, write = os.pipe()
    try:
        _send(sender, b"\0warm\0request", [read, write])  # no BrokenPipeError
        assert sender.received is not None
        data, fds = sender.received
        assert data == b"\0warm\0request" and len(fds) == 2
        os.write(fds[1], b"x")  # the very pipe, passed on
        assert os.read(read, 1) == b"x"
        for fd in fds:
            os.close(fd)
    finally:
        sender.close()
        os.close(read)
        os.close(write)


def test_the_peer_gone_is_told() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.close()
    try:
        _send(ours, b"request", [])
    except BrokenPipeError:
        pass
    else:
        raise AssertionError("a request to a closed peer was taken as sent")
    finally:
        ours.close()
