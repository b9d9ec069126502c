"""The kubelet's crash-loop back-off the controller restarts a pod's containers by:
the first exit restarts at once, then 10 s doubling to 5 min, counted from each
exit, and an exit more than 10 min after the one before starts over."""

from __future__ import annotations

from dockyard.kube.kubelet import Backoff


def _restarts(backoff: Backoff, exits: list[float]) -> list[float]:
    """For exits at those times, the seconds each one waits before its restart (each
    restart taken as soon as it is due)."""
    waits = []
    for finished in exits:
        waits.append(backoff.waiting("c", finished, finished))
        backoff.next("c", finished)
    return waits


def test_first_exit_restarts_at_once_then_doubling_to_five_minutes() -> None:
    backoff = Backoff()
    exits = [0.0]
    waits = _restarts(backoff, exits)
    for _ in range(7):  # each run ends a second after its restart
        exits.append(exits[-1] + waits[-1] + 1)
        waits.append(backoff.waiting("c", exits[-1], exits[-1]))
        backoff.next("c", exits[-1])
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300]


def test_the_wait_runs_from_the_exit() -> None:
    backoff = Backoff()
    _restarts(backoff, [0.0])  # restarted at once; the next exit waits 10 s
    assert backoff.waiting("c", 2.0, 2.0) == 10.0
    assert backoff.waiting("c", 2.0, 9.0) == 3.0
    assert backoff.waiting("c", 2.0, 12.5) == 0.0
    assert backoff.current("c") == 10.0 and backoff.current("other") == 0.0


def test_ten_minutes_after_the_last_exit_starts_over() -> None:
    backoff = Backoff()
    _restarts(backoff, [0.0, 11.0])  # the next exit waits 20 s
    assert backoff.waiting("c", 33.0, 33.0) == 20.0
    assert backoff.waiting("c", 11.0 + 600, 11.0 + 600) == 20.0  # exactly 10 min: not yet
    assert backoff.waiting("c", 11.0 + 601, 11.0 + 601) == 0.0  # ran > 10 min: over
    backoff.next("c", 11.0 + 601)
    assert backoff.current("c") == 10.0
