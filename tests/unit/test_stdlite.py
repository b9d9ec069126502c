"""``dockyard.stdlite``: its NamedTuple builds the class ``typing.NamedTuple`` builds,
its suppress is contextlib's, without importing either (and the runtime's Undo is
ExitStack's callbacks)."""

from __future__ import annotations

import typing

import pytest

from dockyard import stdlite
from dockyard.testing.imports import loaded_after


class Lite(stdlite.NamedTuple):
    """A record."""

    name: str
    size: int = 0
    tags: tuple[str, ...] = ()

    def label(self) -> str:
        return f"{self.name}:{self.size}"


class Typed(typing.NamedTuple):
    """A record."""

    name: str
    size: int = 0
    tags: tuple[str, ...] = ()

    def label(self) -> str:
        return f"{self.name}:{self.size}"


def test_same_record_as_typing_builds() -> None:
    lite, typed = Lite("a", tags=("x",)), Typed("a", tags=("x",))
    assert tuple(lite) == tuple(typed) == ("a", 0, ("x",))
    assert Lite._fields == Typed._fields
    assert Lite._field_defaults == Typed._field_defaults
    assert repr(lite).replace("Lite", "Typed") == repr(typed)
    assert lite._asdict() == typed._asdict()
    assert lite._replace(size=3) == ("a", 3, ("x",))
    assert Lite._make(["b", 2, ()]) == Lite("b", 2)
    assert lite.label() == typed.label() == "a:0"
    assert Lite.__doc__ == "A record."
    assert Lite.__module__ == __name__ and Lite.__qualname__ == "Lite"
    assert Lite.__annotations__ == {"name": "str", "size": "int", "tags": "tuple[str, ...]"}
    assert isinstance(lite, tuple) and hash(lite) == hash(("a", 0, ("x",)))
    with pytest.raises(AttributeError):
        lite.name = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Lite()  # type: ignore[call-arg]


def test_refuses_what_typing_refuses() -> None:
    with pytest.raises(TypeError, match="non-default namedtuple field b cannot follow"):
        class _Order(stdlite.NamedTuple):
            a: int = 0
            b: int  # type: ignore[misc]
    with pytest.raises(AttributeError, match="Cannot overwrite NamedTuple attribute _asdict"):
        class _Override(stdlite.NamedTuple):
            a: int

            def _asdict(self) -> dict[str, int]:  # type: ignore[misc]
                return {}


def test_the_runtime_path_imports_no_typing() -> None:
    modules = ("typing", "re", "pathlib", "json", "threading", "argparse", "dataclasses",
               "contextlib")
    code = ("import dockyard.runtime.cli, dockyard.runtime.commands, dockyard.runtime.create,"
            " dockyard.runtime.bundle, dockyard.runtime.operations, dockyard.runtime.state,"
            " dockyard.runtime.linux.cgroups\n")
    assert loaded_after(code, modules, no_site=True) == []


def test_suppress_is_contextlib_suppress() -> None:
    with stdlite.suppress(KeyError, OSError):
        raise FileNotFoundError("listed by its base")
    with stdlite.suppress():
        pass
    with pytest.raises(ValueError), stdlite.suppress(KeyError):
        raise ValueError("not listed")


def test_undo_runs_every_step_last_first_and_keeps_what_is_taken() -> None:
    from dockyard.runtime.interrupts import Undo

    ran: list[str] = []
    with pytest.raises(RuntimeError, match="create failed"), Undo() as undo:
        undo.callback(ran.append, "folder")
        undo.callback(ran.append, "cgroup")
        raise RuntimeError("create failed")
    assert ran == ["cgroup", "folder"]
    ran.clear()
    with Undo() as undo:
        undo.callback(ran.append, "folder")
        undo.pop_all()
    assert ran == []


def test_undo_failing_steps_do_not_stop_the_others() -> None:
    from dockyard.runtime.interrupts import Undo

    ran: list[str] = []

    def fails(what: str) -> None:
        ran.append(what)
        raise OSError(what)

    with pytest.raises(OSError, match="first") as raised, Undo() as undo:
        undo.callback(fails, "first")
        undo.callback(ran.append, "middle")
        undo.callback(fails, "last")
        raise RuntimeError("create failed")
    assert ran == ["last", "middle", "first"]  # (as ExitStack: all run, last first)
    assert isinstance(raised.value.__context__, OSError)
    assert str(raised.value.__context__) == "last"
    assert isinstance(raised.value.__context__.__context__, RuntimeError)
