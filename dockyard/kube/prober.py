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
import time
from collections.abc import Callable
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


# runs a command in a container within a timeout: did it exit 0?
Exec = Callable[[str, tuple[str, ...], float], bool]


def check(probe: dict[str, Any], address: str, exec_in: Exec, container_id: str) -> bool:
    """One run of a probe against ``address`` (or, exec, in the container)."""
    timeout = float(probe.get("timeoutSeconds", 1))
    if "exec" in probe:
        return exec_in(container_id, tuple(probe["exec"]["command"]), timeout)
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
    def __init__(self, exec_in: Exec) -> None:
        self.exec_in = exec_in
        self.tracks: dict[str, Track] = {}  # "CONTAINER-ID/KIND" → its track

    def run(self, container_id: str, kind: str, probe: dict[str, Any], address: str,
            started: float) -> None:
        """Run the probe if it is due (``started``: when the container started, on
        the monotonic clock)."""
        key = f"{container_id}/{kind}"
        now = time.monotonic()
        track = self.tracks.get(key) or Track(
            started + float(probe.get("initialDelaySeconds", 0)), 0, 0, kind == "liveness")
        if now < track.due or (kind == "startup" and (track.passing or track.given_up)):
            self.tracks[key] = track
            return
        ok = check(probe, address, self.exec_in, container_id)
        successes, failures = (track.successes + 1, 0) if ok else (0, track.failures + 1)
        passing = track.passing
        if ok and successes >= int(probe.get("successThreshold", 1)):
            passing = True
        given_up = False
        if not ok and failures >= int(probe.get("failureThreshold", 3)):
            passing = False
            given_up = kind == "startup"
        self.tracks[key] = Track(now + float(probe.get("periodSeconds", 10)), successes,
                                 failures, passing, given_up)

    def forget(self, alive: set[str]) -> None:
        self.tracks = {k: t for k, t in self.tracks.items() if k.split("/")[0] in alive}

    def started(self, container_id: str) -> bool:
        """Its startup probe (if any) has passed: the others may run."""
        track = self.tracks.get(f"{container_id}/startup")
        return track is None or track.passing

    def verdicts(self) -> dict[str, bool]:
        """"ID/KIND" → passing; a startup probe that gave up says "ID/liveness": False
        (the container is restarted, as the kubelet does)."""
        found = {key: track.passing for key, track in self.tracks.items()}
        for key, track in self.tracks.items():
            if track.given_up:
                found[key.replace("/startup", "/liveness")] = False
        return found

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(self.verdicts()).encode(), durable=False)


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
