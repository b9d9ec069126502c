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

from dockyard.stdlite import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
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


class Undo:
    """Undo steps (``callback``), run last first when the block ends, unless taken
    away (``pop_all``) — as ``contextlib.ExitStack`` with callbacks alone, without
    its import on the runtime's every create.  They all run, held: an interrupt
    that comes while they run is raised once they are done.  A step that fails does
    not stop the others; the last failure is raised (the one before as its context,
    then the block's own error), as ExitStack does."""

    def __init__(self) -> None:
        self._steps: list[tuple[Callable[..., object], tuple[object, ...],
                                dict[str, object]]] = []

    def callback(self, step: Callable[..., object], /, *args: object,
                 **kwargs: object) -> None:
        self._steps.append((step, args, kwargs))

    def pop_all(self) -> Undo:
        """Take the steps away (a create that succeeded keeps what it made)."""
        taken = Undo()
        taken._steps, self._steps = self._steps, []
        return taken

    def __enter__(self) -> Undo:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> None:
        failure = exc
        with held():
            while self._steps:
                step, args, kwargs = self._steps.pop()
                try:
                    step(*args, **kwargs)
                except BaseException as step_failure:  # noqa: BLE001 - the rest still run
                    if failure is not None and step_failure is not failure:
                        step_failure.__context__ = failure
                    failure = step_failure
        if failure is not None and failure is not exc:
            chained = failure.__context__  # a raise here would set the block's error
            try:
                raise failure
            except BaseException:
                failure.__context__ = chained
                raise
