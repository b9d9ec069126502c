"""``converge.in_parallel``: services start once what they need is done, independent
ones together; an error stops what has not begun."""

from __future__ import annotations

import threading

import pytest

from dockyard.compose.converge import in_parallel


def test_dependencies_first_and_independent_ones_together() -> None:
    log: list[str] = []
    lock = threading.Lock()
    both = threading.Barrier(2, timeout=10)  # breaks (fails) unless a and b run at once

    def work(name: str) -> None:
        if name in ("a", "b"):
            both.wait()
        with lock:
            log.append(name)

    needs = {"a": set(), "b": set(), "c": {"a", "b"}, "d": {"c"}}
    in_parallel(["a", "b", "c", "d"], needs, work)
    assert sorted(log[:2]) == ["a", "b"] and log[2:] == ["c", "d"]


def test_an_error_stops_what_has_not_begun() -> None:
    ran: list[str] = []

    def work(name: str) -> None:
        ran.append(name)
        if name == "a":
            raise RuntimeError("a failed")

    with pytest.raises(RuntimeError, match="a failed"):
        in_parallel(["a", "b"], {"a": set(), "b": {"a"}}, work)
    assert ran == ["a"]
