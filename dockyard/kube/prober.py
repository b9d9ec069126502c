"""Probes run by the controller, with their timings: ``initialDelaySeconds``,
``periodSeconds``, ``timeoutSeconds``, ``successThreshold`` and
``failureThreshold``.  httpGet, tcpSocket and grpc probes go from the host to the
pod's address (as the kubelet's go from the node); an exec probe runs its command
in the container.  (One exec liveness or readiness probe of a container without a
startupProbe is its healthcheck instead, run by its supervisor: ``lower._probes``.)

A container's controller-run probes ride on labels
(``io.dockyard.kube.netprobe.KIND``, the probe as JSON); what they last said is
kept here and written beside the controller's state, so ``kube get`` reads the
same readiness the Services use.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

from dockyard.store.atomic import atomic_write

LABEL = "io.dockyard.kube.netprobe."  # + readiness | liveness | startup


class Track(NamedTuple):
    due: float  # monotonic time of the next run
    successes: int
    failures: int
    passing: bool  # what the probe says now (readiness starts False, liveness True)
    given_up: bool = False  # a startup probe that failed failureThreshold times


class Target(NamedTuple):
    """One probe of one running container, as the controller's round last saw it."""

    container_id: str
    kind: str  # startup | readiness | liveness
    probe: dict[str, Any]
    address: str  # the pod's
    started: float  # when the container started, on the monotonic clock
    argv: tuple[str, ...] = ()  # an exec probe: the runtime command running it inside


def check(target: Target) -> bool:
    """One run of a probe against the pod's address (or, exec, in the container)."""
    probe, address = target.probe, target.address
    timeout = float(probe.get("timeoutSeconds", 1))
    if "exec" in probe:
        return _exec(target.argv, timeout)
    if "grpc" in probe:
        from dockyard.kube import grpc_health

        return grpc_health.serving(address, int(probe["grpc"]["port"]),
                                   str(probe["grpc"].get("service") or ""), timeout)
    if "tcpSocket" in probe:
        try:
            with socket.create_connection((probe["tcpSocket"].get("host") or address,
                                           int(probe["tcpSocket"]["port"])), timeout=timeout):
                return True
        except OSError:
            return False
    try:
        return 200 <= http_get(probe["httpGet"].get("host") or address, probe["httpGet"],
                               timeout) < 400
    except OSError:
        return False


def _exec(argv: tuple[str, ...], timeout: float) -> bool:
    """The runtime's exec of the probe's command exited 0 within ``timeout``."""
    if not argv:
        return False
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout).returncode == 0
    except (subprocess.TimeoutExpired, OSError):
        return False


def http_get(host: str, action: dict[str, Any], timeout: float) -> int:
    """The status of an httpGet action's GET (``path``, ``port``, ``httpHeaders``)
    of ``host``; OSError when there is no HTTP answer."""
    connection = http.client.HTTPConnection(host, int(action["port"]), timeout=timeout)
    try:
        headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
        connection.request("GET", action.get("path") or "/", headers=headers)
        return connection.getresponse().status
    except http.client.HTTPException as exc:
        raise OSError(f"not an HTTP answer: {exc!r}") from exc
    finally:
        connection.close()


class Prober:
    """Runs the watched probes on their own clock, each run in a thread of its own:
    a slow exec probe, or one waiting out its timeoutSeconds, delays no other probe
    (the kubelet runs a worker per probe the same way).  The worker threads only
    wait on a subprocess or a socket; nothing in them calls the engine (an exec
    probe's runtime command is made by the controller's round: ``Target.argv``)."""

    def __init__(self) -> None:
        self.tracks: dict[str, Track] = {}  # "CONTAINER-ID/KIND" → its track
        self.targets: dict[str, Target] = {}  # same keys → what to probe
        self.running: dict[str, threading.Thread] = {}  # same keys → its run under way
        self.generation: dict[str, int] = {}  # container id → bumped by ``reset``
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.closed = False
        self.clock = threading.Thread(target=self._loop, name="prober", daemon=True)
        self.clock.start()

    def watch(self, targets: list[Target]) -> None:
        """The probes to run from now on (those of the running containers)."""
        with self.lock:
            self.targets = {f"{t.container_id}/{t.kind}": t for t in targets}
        self.wake.set()

    def _loop(self) -> None:
        while not self.closed:
            with self.lock:
                now = time.monotonic()
                due = [t for key, t in self.targets.items()
                       if key not in self.running and self._due(key, t, now)]
                for target in due:
                    key = f"{target.container_id}/{target.kind}"
                    generation = self.generation.get(target.container_id, 0)
                    self.running[key] = threading.Thread(
                        target=self._run, args=(target, generation), daemon=True,
                        name=f"probe {key}")
                    self.running[key].start()
                soonest = min((t.due for k, t in self.tracks.items()
                               if k in self.targets and k not in self.running),
                              default=now + 0.5)
            self.wake.wait(max(0.05, min(0.5, soonest - time.monotonic())))
            self.wake.clear()

    def _due(self, key: str, target: Target, now: float) -> bool:
        """Under the lock: the probe's next run is due (its track made on first sight)."""
        track = self.tracks.get(key)
        if track is None:
            track = self.tracks[key] = Track(
                target.started + float(target.probe.get("initialDelaySeconds", 0)), 0, 0,
                target.kind == "liveness")
        if target.kind == "startup":
            return not (track.passing or track.given_up) and now >= track.due
        startup = self.tracks.get(f"{target.container_id}/startup")
        held = f"{target.container_id}/startup" in self.targets and not (
            startup is not None and startup.passing)
        return not held and now >= track.due  # until the startup probe passes, it waits

    def _run(self, target: Target, generation: int) -> None:
        began = time.monotonic()
        ok = check(target)
        key = f"{target.container_id}/{target.kind}"
        with self.lock:
            self.running.pop(key, None)
            track = self.tracks.get(key)
            if track is None or self.generation.get(target.container_id, 0) != generation:
                return  # the container was restarted meanwhile: a verdict on the old one
            self.tracks[key] = _judged(track, target, ok, began)
        self.wake.set()

    def reset(self, container_id: str) -> None:
        """The container starts again: its probes start over (a run under way for
        the one before is not counted)."""
        with self.lock:
            self.generation[container_id] = self.generation.get(container_id, 0) + 1
            self.tracks = {k: t for k, t in self.tracks.items()
                           if k.split("/")[0] != container_id}

    def forget(self, alive: set[str]) -> None:
        with self.lock:
            self.tracks = {k: t for k, t in self.tracks.items() if k.split("/")[0] in alive}
            self.generation = {k: g for k, g in self.generation.items() if k in alive}

    def verdicts(self) -> dict[str, bool]:
        """"ID/KIND" → passing; a startup probe that gave up says "ID/liveness": False
        (the container is restarted, as the kubelet does)."""
        with self.lock:
            found = {key: track.passing for key, track in self.tracks.items()}
            for key, track in self.tracks.items():
                if track.given_up:
                    found[key.replace("/startup", "/liveness")] = False
        return found

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(self.verdicts()).encode(), durable=False)

    def close(self, wait: float = 3.0) -> None:
        """Stop the clock; wait (a while) for the runs under way."""
        self.closed = True
        self.wake.set()
        self.clock.join()
        deadline = time.monotonic() + wait
        for thread in list(self.running.values()):
            thread.join(max(0.0, deadline - time.monotonic()))


def _judged(track: Track, target: Target, ok: bool, began: float) -> Track:
    """The track after one run (begun at ``began``) that said ``ok``."""
    probe = target.probe
    successes, failures = (track.successes + 1, 0) if ok else (0, track.failures + 1)
    passing, given_up = track.passing, False
    if ok and successes >= int(probe.get("successThreshold", 1)):
        passing = True
    if not ok and failures >= int(probe.get("failureThreshold", 3)):
        passing = False
        given_up = target.kind == "startup"
    return Track(began + float(probe.get("periodSeconds", 10)), successes, failures, passing,
                 given_up)


def read_verdicts(folder: Path) -> dict[str, bool]:
    """Every controller's latest verdicts (``kube get``)."""
    found: dict[str, bool] = {}
    for path in sorted(folder.glob("*.probes")) if folder.exists() else []:
        try:
            found.update(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def probes_of(labels: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Kind → probe, of a container's controller-run probes."""
    return {key[len(LABEL):]: json.loads(value) for key, value in labels.items()
            if key.startswith(LABEL)}
