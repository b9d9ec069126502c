"""The supervisor's exit hook runs beside the supervisor's own last step (the runtime's
delete: ``supervise.monitor``): the hook's fork starts its work at once, waits for
that step only where it asks to, learns whether it was done, and keeps none of the
supervisor's descriptors.  Each step waits for the other's sign, never a sleep."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

from dockyard.supervise.monitor import _PythonHook, _run_python_hook
from dockyard.testing.poll import until

MODULE = __name__


def hook_that_waits(folder: str, *, beside_done: Callable[[], bool] | None = None) -> None:
    """The hook: what it sees of the delete before and after it waits for it."""
    deleted = Path(folder) / "deleted"
    seen: dict[str, bool] = {"before": deleted.exists(),
                             "called_with_wait": beside_done is not None}
    (Path(folder) / "looked").touch()  # the delete, beside us, waits for this
    if beside_done is not None:
        seen["done"] = beside_done()
        seen["again"] = beside_done()  # a second call answers at once, the same
    seen["after"] = deleted.exists()
    (Path(folder) / "seen.json").write_text(json.dumps(seen))


def plain_hook(folder: str) -> None:
    (Path(folder) / "seen.json").write_text(json.dumps({"plain": True}))


def test_the_hook_starts_while_the_delete_runs_and_waits_for_it(tmp_path: Path) -> None:
    def delete_once_the_hook_looked() -> None:
        # red when the delete runs first (before the fork): the hook never looks
        # while it waits, the wait ends in an error, and the gate says not done
        until("the hook to look", (tmp_path / "looked").exists, timeout=10)
        (tmp_path / "deleted").touch()

    _PythonHook([MODULE, "hook_that_waits", str(tmp_path)],
                gated=True).finish(delete_once_the_hook_looked)
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == {"before": False, "called_with_wait": True, "done": True, "again": True,
                    "after": True}


def test_a_failed_delete_opens_the_gate_unsaid(tmp_path: Path) -> None:
    def failing_delete() -> None:
        raise OSError("the runtime's state could not go")

    _PythonHook([MODULE, "hook_that_waits", str(tmp_path)], gated=True).finish(failing_delete)
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == {"before": False, "called_with_wait": True, "done": False,
                    "again": False, "after": False}


def test_a_hook_with_nothing_beside_is_called_as_it_is_named(tmp_path: Path) -> None:
    _run_python_hook([MODULE, "plain_hook", str(tmp_path)])
    assert json.loads((tmp_path / "seen.json").read_text()) == {"plain": True}


def hook_held_by_a_fifo(fifo: str) -> None:
    """A hook that outlives the supervisor's use of a socket: it ends once the test
    writes to ``fifo`` (opened by name: it keeps no inherited descriptor)."""
    with open(fifo, "rb") as held:
        held.read()


def test_the_hook_keeps_none_of_the_supervisors_descriptors(tmp_path: Path) -> None:
    fifo = tmp_path / "hold"
    os.mkfifo(fifo)
    ours, peer = socket.socketpair()  # an attached client, say
    hook = _PythonHook([MODULE, "hook_held_by_a_fifo", str(fifo)], gated=False)
    try:
        ours.close()  # the supervisor is done with it: the client must see EOF now,
        peer.settimeout(10)  # not once the hook ends (red: a timeout)
        assert peer.recv(1) == b""
    finally:
        peer.close()
        with open(fifo, "wb"):  # (the hook's open and ours meet; our close ends it)
            pass
        hook.finish()
