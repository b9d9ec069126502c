"""The supervisor's exit hook runs beside the supervisor's own last steps (the exit's
record, the runtime's delete: ``supervise.monitor``): the hook's fork starts its work
at once, waits for those only where it asks to, and keeps none of the supervisor's
descriptors."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

from dockyard.supervise.monitor import _PythonHook, _run_python_hook

MODULE = __name__


def hook_that_waits(folder: str, *, beside_done: Callable[[], bool] | None = None) -> None:
    """The hook: what it sees of the delete before and after it waits for it."""
    deleted = Path(folder) / "deleted"
    seen = {"before": deleted.exists(), "called_with_wait": beside_done is not None}
    if beside_done is not None:
        seen["done"] = beside_done()
        seen["again"] = beside_done()  # a second call answers at once, the same
    seen["after"] = deleted.exists()
    (Path(folder) / "seen.json").write_text(json.dumps(seen))


def plain_hook(folder: str) -> None:
    (Path(folder) / "seen.json").write_text(json.dumps({"plain": True}))


def test_the_hook_starts_while_the_delete_runs_and_waits_for_it(tmp_path: Path) -> None:
    def slow_delete() -> None:
        time.sleep(0.5)
        (tmp_path / "deleted").touch()

    _PythonHook([MODULE, "hook_that_waits", str(tmp_path)], gated=True).finish(slow_delete)
    seen = json.loads((tmp_path / "seen.json").read_text())
    # red when the delete runs first (before the fork, or in it): "before" is True
    assert seen == {"before": False, "called_with_wait": True, "done": True, "again": True,
                    "after": True}


def test_a_failed_delete_does_not_hold_the_hook(tmp_path: Path) -> None:
    def failing_delete() -> None:
        raise OSError("the runtime's state could not go")

    start = time.monotonic()
    _PythonHook([MODULE, "hook_that_waits", str(tmp_path)], gated=True).finish(failing_delete)
    assert time.monotonic() - start < 10
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == {"before": False, "called_with_wait": True, "done": False,
                    "again": False, "after": False}


def test_a_hook_with_nothing_beside_is_called_as_it_is_named(tmp_path: Path) -> None:
    _run_python_hook([MODULE, "plain_hook", str(tmp_path)])
    assert json.loads((tmp_path / "seen.json").read_text()) == {"plain": True}


def slow_hook(folder: str) -> None:
    """A hook that outlives the supervisor's use of a socket."""
    time.sleep(2)


def test_the_hook_keeps_none_of_the_supervisors_descriptors(tmp_path: Path) -> None:
    ours, peer = socket.socketpair()  # an attached client, say
    hook = _PythonHook([MODULE, "slow_hook", str(tmp_path)], gated=False)
    try:
        ours.close()  # the supervisor is done with it: the client must see EOF now,
        peer.settimeout(1.5)  # not once the hook ends (red: a timeout)
        assert peer.recv(1) == b""
    finally:
        peer.close()
        hook.finish()
