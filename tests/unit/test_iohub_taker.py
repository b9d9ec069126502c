"""The attach socket's exit-hook taker (``supervise.iohub``): one client may take the
exit hook's work over; it hears ``taken`` (``exit hook``), the exit code, and stays
connected after the last exit only — the supervisor's words after it are
``supervise.monitor``'s, read by the engine's ``Frames``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard import stdcopy
from dockyard.engine import attach_socket
from dockyard.engine.attach_socket import Frames
from dockyard.stdcopy import frame
from dockyard.supervise.iohub import IOHub
from dockyard.supervise.logfile import JsonLog


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[IOHub]:
    log = JsonLog(tmp_path / "container.log")
    made = IOHub(tmp_path, log, tty=False)
    yield made
    made.close()
    log.file.close()


def _client(hub: IOHub, bundle: Path, line: str) -> socket.socket:
    sock = attach_socket.connect(bundle, line)
    sock.settimeout(5)
    hub.wait_for_client(0.2)  # (accepts it and reads its line)
    while hub.pending:
        hub.wait_for_client(0.2)
    return sock


def test_one_taker_stays_connected_after_the_last_exit(hub: IOHub, tmp_path: Path) -> None:
    first = _client(hub, tmp_path, "exit hook")
    frames = Frames(first)
    assert frames.next() == (stdcopy.HOOK_STREAM, stdcopy.TAKEN)
    second = _client(hub, tmp_path, "exit hook")  # (someone took it: refused)
    assert second.recv(64) == b""
    taker = hub.exited(137, last=True)
    assert taker is not None
    assert frames.until(stdcopy.EXIT_STREAM) == b"137"
    taker.sendall(frame(stdcopy.HOOK_STREAM, stdcopy.DONE))  # (the supervisor's word)
    assert frames.until(stdcopy.HOOK_STREAM) == stdcopy.DONE
    taker.close()
    assert frames.next() is None
    for sock in (first, second):
        sock.close()


def test_an_exit_that_is_not_the_last_lets_the_taker_go(hub: IOHub, tmp_path: Path) -> None:
    """A restart: its exit hook is not due; the taker hears the code, then the end."""
    sock = _client(hub, tmp_path, "attach exit hook")
    assert hub.exited(1) is None
    frames = Frames(sock)
    assert frames.until(stdcopy.EXIT_STREAM) == b"1"
    assert frames.next() is None
    sock.close()


def test_a_taker_gone_before_the_exit_leaves_the_hook_to_the_supervisor(
        hub: IOHub, tmp_path: Path) -> None:
    sock = _client(hub, tmp_path, "exit hook")
    assert Frames(sock).next() == (stdcopy.HOOK_STREAM, stdcopy.TAKEN)
    sock.close()
    assert hub.exited(137, last=True) is None


def test_a_plain_attach_exit_client_is_closed_after_the_code(hub: IOHub,
                                                            tmp_path: Path) -> None:
    sock = _client(hub, tmp_path, "attach exit")
    assert hub.exited(0, last=True) is None
    frames = Frames(sock)
    assert frames.until(stdcopy.EXIT_STREAM) == b"0"
    assert frames.next() is None
    sock.close()


def test_a_client_whose_line_was_never_read_hears_no_at_the_end(tmp_path: Path) -> None:
    """Its connection is closed with the hub (an ``rm -f`` asking just as the container
    ended on its own goes on at once, not once the supervisor has ended)."""
    log = JsonLog(tmp_path / "container.log")
    hub = IOHub(tmp_path, log, tty=False)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(tmp_path / "attach.sock"))
    sock.settimeout(5)
    hub.wait_for_client(0.05)  # (accepted; no line sent yet: pending)
    assert len(hub.pending) == 1
    hub.close()
    log.file.close()
    assert sock.recv(64) == b""  # (not a timeout)
    sock.close()
