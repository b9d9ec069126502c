"""httpGet and tcpSocket probes, run by the controller from the host against the
pod's address (as the kubelet does from the node), with their timings:
``initialDelaySeconds``, ``periodSeconds``, ``timeoutSeconds``, ``successThreshold``
and ``failureThreshold``.  (An exec probe is the container's healthcheck instead,
run by its supervisor.)

A container's network probes ride on labels (``io.dockyard.kube.netprobe.KIND``,
the probe as JSON); what they last said is kept here and written beside the
controller's state, so ``kube get`` reads the same readiness the Services use.
"""

from __future__ import annotations

import http.client
import json
import socket
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


def check(probe: dict[str, Any], address: str) -> bool:
    """One run of a probe against ``address``."""
    timeout = float(probe.get("timeoutSeconds", 1))
    if "tcpSocket" in probe:
        try:
            with socket.create_connection((address, int(probe["tcpSocket"]["port"])),
                                          timeout=timeout):
                return True
        except OSError:
            return False
    spec = probe["httpGet"]
    connection = http.client.HTTPConnection(address, int(spec["port"]), timeout=timeout)
    try:
        headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
        connection.request("GET", spec.get("path") or "/", headers=headers)
        return 200 <= connection.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


class Prober:
    def __init__(self) -> None:
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
        ok = check(probe, address)
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
    """Kind → probe, of a container's network probes."""
    return {key[len(LABEL):]: json.loads(value) for key, value in labels.items()
            if key.startswith(LABEL)}
