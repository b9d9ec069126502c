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
``typing.NamedTuple`` itself, so every record is checked as before.

Use: ``from dockyard.stdlite import NamedTuple`` and ``class Point(NamedTuple): ...``.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False

if TYPE_CHECKING:
    from contextlib import suppress as suppress
    from typing import NamedTuple as NamedTuple
else:
    # what typing refuses to let a class body define, and what it never copies
    _PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields",
                             "_field_defaults", "_make", "_replace", "_asdict", "_source"})
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__", "__qualname__"})

    class _RecordMeta(type):
        """Turns ``class X(NamedTuple)`` into ``collections.namedtuple('X', ...)``."""

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
            record = namedtuple(typename, annotations,  # type: ignore[misc]
                                defaults=defaults, module=namespace["__module__"])
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
