"""``dockyard.stdlite``: its NamedTuple builds the class ``typing.NamedTuple`` builds,
its suppress is contextlib's, without importing either (and the runtime's Undo is
ExitStack's callbacks); its posix_signal is signal's C half, and the runtime's table
of signal names is ``signal.Signals``'."""

from __future__ import annotations

import copy
import pickle
import signal
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


class LiteOne(stdlite.NamedTuple):
    only: int


class TypedOne(typing.NamedTuple):
    only: int


class LitePlain(stdlite.NamedTuple):
    a: int
    b: str = "x"


class TypedPlain(typing.NamedTuple):
    a: int
    b: str = "x"


@pytest.mark.parametrize(("lite", "typed"), [(Lite, Typed), (LiteOne, TypedOne),
                                             (LitePlain, TypedPlain)])
def test_same_methods_and_errors_as_namedtuple(lite: typing.Any, typed: typing.Any) -> None:
    """Built without ``collections``, the class still behaves as namedtuple's does:
    the same attributes, constructor errors, ``_make``/``_replace`` refusals, pickling,
    copying and pattern matching."""
    fields = typed._fields
    assert lite._fields == fields and lite.__match_args__ == typed.__match_args__
    assert lite._field_defaults == typed._field_defaults
    assert lite.__new__.__defaults__ == typed.__new__.__defaults__
    assert lite.__slots__ == typed.__slots__ == ()
    assert lite.__mro__[1:] == typed.__mro__[1:] == (tuple, object)
    if typed.__doc__.startswith(typed.__name__ + "("):  # no docstring: namedtuple's own
        assert lite.__doc__ == typed.__doc__.replace(typed.__name__, lite.__name__)
    for index, name in enumerate(fields):
        assert getattr(lite, name).__doc__ == getattr(typed, name).__doc__
        assert getattr(lite._make(range(len(fields))), name) == index
    values = tuple(range(len(fields)))
    one, other = lite(*values), typed(*values)
    assert repr(one).replace(lite.__name__, "X") == repr(other).replace(typed.__name__, "X")
    assert one._asdict() == other._asdict()
    assert pickle.loads(pickle.dumps(one)) == one
    assert type(pickle.loads(pickle.dumps(one))) is lite
    assert copy.copy(one) == one and type(copy.deepcopy(one)) is lite
    assert one.__getnewargs__() == other.__getnewargs__()
    makers: list[typing.Callable[[typing.Any], object]] = [
        lambda cls: cls(*values, 99), lambda cls: cls._make((*values, 99)),
        lambda cls: cls(), lambda cls: cls(**{fields[0]: 1, "nope": 2})]
    for make in makers:
        with pytest.raises(TypeError) as from_lite:
            make(lite)
        with pytest.raises(TypeError) as from_typed:
            make(typed)
        assert (str(from_lite.value).replace(lite.__name__, "X")
                == str(from_typed.value).replace(typed.__name__, "X"))
    with pytest.raises(ValueError, match=r"Got unexpected field names: \['nope'\]"):
        one._replace(nope=1)
    match one:
        case lite(first):
            assert first == 0
    with pytest.raises(AttributeError):
        one.extra = 1


@pytest.mark.parametrize("field", ["a b", "x); import os; (y", "_private"])
def test_refuses_field_names_namedtuple_refuses(field: str) -> None:
    """Only identifiers reach the ``eval`` that builds ``__new__`` (a class body can
    only write identifiers, but a namespace can be built by hand)."""
    with pytest.raises(ValueError) as typed:
        typing.NamedTuple("Bad", [(field, int)])
    with pytest.raises(ValueError) as lite:
        make_class: typing.Any = type(stdlite.NamedTuple)  # (the metaclass)
        make_class("Bad", (stdlite.NamedTuple,),
                   {"__annotations__": {field: "int"}, "__module__": __name__})
    assert str(lite.value) == str(typed.value)


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
    """Nor ``enum``, ``signal``, ``functools`` or ``collections`` (~5 ms together)."""
    modules = ("typing", "re", "pathlib", "json", "threading", "argparse", "dataclasses",
               "contextlib", "enum", "signal", "functools", "collections")
    code = ("import dockyard.runtime.cli, dockyard.runtime.commands, dockyard.runtime.create,"
            " dockyard.runtime.bundle, dockyard.runtime.operations, dockyard.runtime.state,"
            " dockyard.runtime.linux.cgroups, dockyard.runtime.init\n")
    assert loaded_after(code, modules, no_site=True) == []


def test_posix_signal_is_signals_c_half() -> None:
    from dockyard.runtime.linux import signals

    assert stdlite.posix_signal.SIGKILL == int(signal.SIGKILL) == 9
    assert stdlite.posix_signal.signal is not signal.signal  # (signal's wraps it)
    assert signals.names() == {member.name: member.value for member in signal.Signals}


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
