"""The few standard-library names the runtime's every call needs, without the modules
that hold them: ``typing`` (with the ``re`` it imports, ~4 ms) and ``contextlib``
(~2.4 ms: its abstract base classes), against ~8 ms for the interpreter itself.

``TYPE_CHECKING`` is False here and True to type checkers (mypy and ruff go by the
name), so annotations-only imports go under ``if TYPE_CHECKING:`` as usual.

``suppress`` is ``contextlib.suppress``: a block whose listed exceptions end it
quietly.

``typing.NamedTuple`` costs twice on each ``dockyard-runtime`` call: importing
``typing`` (~2 ms with the ``re`` it pulls in) and, per class, a ``compile`` of every
field's annotation (under ``from __future__ import annotations`` each is a string that
``typing`` turns into a ``ForwardRef``; the 25 records of ``oci.runtime_spec`` alone
spent ~4 ms there).  The class built here is the one ``typing.NamedTuple`` builds (a
``collections.namedtuple`` with the class body's defaults, methods and docstring, and
its annotations kept as written), minus those checks; type checkers see
``typing.NamedTuple`` itself, so every record is checked as before.  It is built
the way ``collections.namedtuple`` builds it (a tuple subclass, ``__new__`` compiled
from the field names, C item getters), without importing ``collections``: that
module's own classes (OrderedDict, Counter, ChainMap, UserDict…) and the ``operator``,
``keyword`` and ``reprlib`` it imports cost ~1.7 ms of each runtime command.

Use: ``from dockyard.stdlite import NamedTuple`` and ``class Point(NamedTuple): ...``.

``posix_signal`` is ``_signal``, the C module the standard ``signal`` module wraps in
enums: the same functions and numbers, plain ints where ``signal`` returns enum
members.  ``signal`` imports ``enum`` and ``functools`` and builds four enums, ~3 ms of
each ``dockyard-runtime`` command; ``_signal`` is built in.  Type checkers see
``signal``.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    import signal
    from contextlib import suppress as suppress
    from typing import NamedTuple as NamedTuple

    posix_signal = signal
else:
    import _signal as posix_signal  # noqa: F401 - for the runtime (see the docstring)
    from _collections import _tuplegetter  # CPython's field accessor, namedtuple's too

    def _record_class(typename: str, fields: tuple[str, ...], defaults: tuple[object, ...],
                      module: str) -> type:
        """What ``collections.namedtuple(typename, fields, defaults=…, module=…)``
        returns, to the methods and their error messages."""
        for name in fields:  # (so only identifiers reach the eval below, as namedtuple's)
            if not name.isidentifier():
                raise ValueError("Type names and field names must be valid identifiers: "
                                 f"{name!r}")
            if name.startswith("_"):
                raise ValueError(f"Field names cannot start with an underscore: {name!r}")
        count = len(fields)
        args = ", ".join(fields) + ("," if count == 1 else "")
        new = eval(f"lambda _cls, {args}: _tuple_new(_cls, ({args}))",  # noqa: S307
                   {"_tuple_new": tuple.__new__, "__builtins__": {},
                    "__name__": f"namedtuple_{typename}"})
        new.__name__ = "__new__"
        new.__doc__ = f"Create new instance of {typename}({args})"
        new.__defaults__ = defaults
        shown = "(" + ", ".join(f"{name}=%r" for name in fields) + ")"

        def _make(cls: type, iterable: object) -> tuple[object, ...]:
            made = tuple.__new__(cls, iterable)  # type: ignore[type-var]
            if len(made) != count:
                raise TypeError(f"Expected {count} arguments, got {len(made)}")
            return made

        def _replace(self: tuple[object, ...], /, **changes: object) -> tuple[object, ...]:
            made = self._make(map(changes.pop, fields, self))  # type: ignore[attr-defined]
            if changes:
                raise ValueError(f"Got unexpected field names: {list(changes)!r}")
            return made  # type: ignore[no-any-return]

        def __repr__(self: tuple[object, ...]) -> str:  # noqa: N807 - the method's name
            return self.__class__.__name__ + shown % self

        def _asdict(self: tuple[object, ...]) -> dict[str, object]:
            return dict(zip(fields, self, strict=True))

        def __getnewargs__(self: tuple[object, ...]) -> tuple[object, ...]:  # noqa: N807
            return tuple(self)

        for method in (new, _make, _replace, __repr__, _asdict, __getnewargs__):
            method.__qualname__ = f"{typename}.{method.__name__}"  # (named in errors)
        namespace: dict[str, object] = {
            "__doc__": f"{typename}({args})", "__slots__": (), "_fields": fields,
            "_field_defaults": dict(zip(fields[count - len(defaults):], defaults, strict=True)),
            "__new__": new, "_make": classmethod(_make), "_replace": _replace,
            "__repr__": __repr__, "_asdict": _asdict, "__getnewargs__": __getnewargs__,
            "__match_args__": fields, "__module__": module}
        for index, name in enumerate(fields):
            namespace[name] = _tuplegetter(index, f"Alias for field number {index}")
        return type(typename, (tuple,), namespace)

    # what typing refuses to let a class body define, and what it never copies
    _PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields",
                             "_field_defaults", "_make", "_replace", "_asdict", "_source"})
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__", "__qualname__"})

    class _RecordMeta(type):
        """Turns ``class X(NamedTuple)`` into what ``collections.namedtuple('X', ...)``
        returns."""

        def __new__(mcs, typename: str, bases: tuple[type, ...],
                    namespace: dict[str, object]) -> type:
            if not bases:  # NamedTuple itself
                return super().__new__(mcs, typename, bases, namespace)
            if bases != (NamedTuple,):
                raise TypeError("a record can only inherit from NamedTuple")
            annotations = dict(namespace.get("__annotations__", {}))  # type: ignore[call-overload]
            defaults: list[object] = []
            for field in annotations:
                if field in namespace:
                    defaults.append(namespace[field])
                elif defaults:
                    raise TypeError(f"non-default namedtuple field {field} cannot follow "
                                    f"default field{'s' if len(defaults) > 1 else ''} "
                                    f"{', '.join(f for f in annotations if f in namespace)}")
            record = _record_class(typename, tuple(annotations), tuple(defaults),
                                   str(namespace["__module__"]))
            record.__annotations__ = annotations
            record.__new__.__annotations__ = annotations
            for key, value in namespace.items():
                if key in _PROHIBITED:
                    raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
                if key not in _SPECIAL and key not in annotations:
                    setattr(record, key, value)
            record.__qualname__ = str(namespace.get("__qualname__", typename))
            return record  # type: ignore[no-any-return]

    class NamedTuple(metaclass=_RecordMeta):
        """Base of a record class (see the module's docstring)."""

    class suppress:  # noqa: N801 - contextlib's name
        """``contextlib.suppress``."""

        def __init__(self, *exceptions: type[BaseException]) -> None:
            self._exceptions = exceptions

        def __enter__(self) -> None:
            pass

        def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                     tb: object) -> bool:
            return typ is not None and issubclass(typ, self._exceptions)
