"""runtime.interrupts: an exception a signal handler raises waits for the end of a
``held`` block, and undo steps all run when one comes while they run (real signals,
sent to this process)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from dockyard.runtime.interrupts import Undo, held, interrupt


class Interrupted(BaseException):
    pass


def _raise(_sig: int, _frame: FrameType | None) -> None:
    interrupt(Interrupted())


@pytest.fixture
def handler() -> Iterator[None]:
    previous = signal.signal(signal.SIGUSR1, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)


def _signalled() -> None:
    """SIGUSR1 to ourselves: its handler runs before this returns."""
    os.kill(os.getpid(), signal.SIGUSR1)


def test_an_interrupt_outside_a_held_block_raises_at_once(handler: None) -> None:
    steps = []
    with pytest.raises(Interrupted):
        _signalled()
        steps.append("after")
    assert steps == []


def test_an_interrupt_in_a_held_block_is_raised_as_the_outermost_one_ends(
        handler: None) -> None:
    steps = []
    with pytest.raises(Interrupted):
        with held():
            with held():
                _signalled()
                steps.append("made")
            steps.append("registered")
        steps.append("past the block")
    assert steps == ["made", "registered"]
    with held():  # nothing is held over for the next block
        steps.append("next")
    assert steps[-1] == "next"


def test_undo_steps_all_run_when_an_interrupt_comes_during_one(handler: None) -> None:
    undone = []

    def step(name: str, *, interrupted: bool = False) -> None:
        if interrupted:
            _signalled()
        undone.append(name)

    with pytest.raises(Interrupted), Undo() as undo:
        undo.callback(step, "first")
        undo.callback(step, "second", interrupted=True)
        undo.callback(step, "third")
        raise ValueError("the create failed")
    assert undone == ["third", "second", "first"]
