"""Start order from ``depends_on``: dependencies first, a cycle refused by name."""

from __future__ import annotations

from collections.abc import Mapping

from dockyard.errors import InvalidArgument


def start_order(depends: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Services ordered so that each comes after what it depends on; ties keep the
    file's order."""
    done: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = visiting[visiting.index(name):] + [name]
            raise InvalidArgument("dependency cycle detected: " + " -> ".join(cycle))
        visiting.append(name)
        for dep in depends[name]:
            visit(dep)
        visiting.pop()
        done.append(name)

    for name in depends:
        visit(name)
    return done


def with_dependencies(selected: list[str], depends: Mapping[str, Mapping[str, str]]) -> set[str]:
    """The selected services and everything they need, transitively."""
    out: set[str] = set()
    stack = list(selected)
    while stack:
        name = stack.pop()
        if name not in out:
            out.add(name)
            stack.extend(depends[name])
    return out


def dependents(changed: set[str], depends: Mapping[str, Mapping[str, str]]) -> set[str]:
    """Every service that needs one of ``changed``, transitively."""
    out = set(changed)
    grew = True
    while grew:
        grew = False
        for name, deps in depends.items():
            if name not in out and out & set(deps):
                out.add(name)
                grew = True
    return out - changed
