"""Exceptions a signal handler raises ("interrupts"), held back while a step and the
registration of its undo are done together.

A create helper learns of its supervisor's death by a signal whose handler raises
(``runtime.driver``): the create stops where it is and the undo steps registered so
far run.  Python runs a handler between any two bytecodes, so the exception can come
between a step and the ``ExitStack.callback`` that undoes it: a runtime folder made
and not yet registered for removal was left behind, empty, and nothing removes a
folder without a saved state (``delete`` finds no container there; ``system check``
takes it for a create at work).  So code that makes something and registers its
undo does both inside ``held()``, undo steps run held (``Undo``), and a handler
raises through ``interrupt``: at once outside such a block, else at the end of the
outermost one.
"""

from __future__ import annotations

import contextlib
from types import TracebackType

# process-wide, as signal handlers are (a create helper is a single-threaded fork)
_depth = 0  # held blocks under way
_held: BaseException | None = None  # the interrupt that came in one


def interrupt(exc: BaseException) -> None:
    """Raise ``exc`` (from a signal handler) now, or at the end of the ``held`` block
    under way."""
    global _held
    if _depth == 0:
        raise exc
    if _held is None:
        _held = exc


class held:  # noqa: N801 - used as a function: ``with held():``
    """A block no interrupt cuts short: one that comes meanwhile is raised as it ends."""

    def __enter__(self) -> None:
        global _depth
        _depth += 1

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        global _depth, _held
        _depth -= 1
        if _depth == 0 and _held is not None:
            pending, _held = _held, None
            raise pending


class Undo(contextlib.ExitStack):
    """An ``ExitStack`` whose undo steps all run, held, when an interrupt comes while
    they run (it is raised once they are done)."""

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> bool:
        with held():
            return bool(super().__exit__(typ, exc, tb))
