"""``GET /containers/json`` keeps its rows between changes (``api.container_list``):
every change — made by the ``dockyard`` CLI in another process, through the API, or
by the container itself — shows in the very next list, never a stale row."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.testing.cli import Dockyard
from dockyard.testing.poll import until

pytestmark = pytest.mark.root


def _rows(http: httpx.Client, query: str = "all=1") -> dict[str, dict[str, Any]]:
    answer = http.get(f"/containers/json?{query}")
    assert answer.status_code == 200, answer.text
    return {row["Names"][0].lstrip("/"): row for row in answer.json()}


def _seen(http: httpx.Client, name: str) -> tuple[str, str]:
    row = _rows(http)[name]
    return row["State"], row["Status"]


def _just_exited(status: str, code: int) -> bool:
    """Docker's words for a container that exited a moment ago: "Less than a second
    ago" (as here on an idle machine), or a second or two on a loaded one (a CI run's
    list came 1 s after the exit once); never a wrong or missing finish time."""
    return re.fullmatch(rf"Exited \({code}\) (Less than a second|[12] seconds?) ago",
                        status) is not None


def test_changes_by_the_cli_show_at_once(http: httpx.Client, box: Dockyard) -> None:
    _rows(http)  # the list is kept from here on
    box("create", "--name", "l1", "--network", "none", "-l", "a=1", "box:1", "sleep", "60")
    assert _seen(http, "l1") == ("created", "Created")
    box("start", "l1")
    state, status = _seen(http, "l1")
    assert state == "running" and status.startswith("Up ")
    assert "l1" in _rows(http, "")  # running: listed without all=1
    box("pause", "l1")
    assert _seen(http, "l1")[0] == "paused" and _seen(http, "l1")[1].endswith("(Paused)")
    assert list(_rows(http, 'filters={"status":["paused"]}')) == ["l1"]
    box("unpause", "l1")
    assert _seen(http, "l1")[0] == "running"
    box("rename", "l1", "l2")
    assert "l1" not in _rows(http) and _seen(http, "l2")[0] == "running"
    box("kill", "-s", "TERM", "l2")  # sleep as PID 1 ignores TERM: still running
    assert _seen(http, "l2")[0] == "running"
    box("kill", "l2")
    state, status = _seen(http, "l2")
    assert state == "exited" and _just_exited(status, 137), status
    assert "l2" not in _rows(http, "")
    box("rm", "l2")
    assert _rows(http) == {}


def test_changes_through_the_api_and_by_the_container_show_at_once(
        http: httpx.Client, box: Dockyard) -> None:
    _rows(http)
    cid = http.post("/containers/create?name=a1", json={
        "Image": "box:1", "Cmd": ["sh", "-c", "sleep 0.3; exit 4"], "Labels": {"k": "v"},
        "HostConfig": {"NetworkMode": "none"}}).json()["Id"]
    assert _rows(http)["a1"]["Labels"] == {"k": "v"}
    assert http.post(f"/containers/{cid}/start").status_code == 204
    assert _seen(http, "a1")[0] == "running"
    # it exits by itself: the list says so as soon as the exit is known
    assert http.post(f"/containers/{cid}/wait").json()["StatusCode"] == 4
    state, status = _seen(http, "a1")
    assert state == "exited" and _just_exited(status, 4), status
    assert http.post(f"/containers/{cid}/rename?name=a2").status_code == 204
    assert list(_rows(http)) == ["a2"]
    assert http.delete(f"/containers/{cid}").status_code == 204
    assert _rows(http) == {}
    # a container made by the CLI and removed by the API, and the other way round
    made = box("run", "-d", "--name", "b1", "--network", "none", "box:1", "sleep", "60")
    assert _rows(http)["b1"]["Id"] == made.stdout.strip()
    assert http.delete("/containers/b1?force=1").status_code == 204
    assert "b1" not in _rows(http)
    http.post("/containers/create?name=b2", json={"Image": "box:1", "Cmd": ["true"]})
    assert "b2" in _rows(http)
    box("rm", "b2")
    assert _rows(http) == {}


def test_health_shows_in_the_status(http: httpx.Client, box: Dockyard) -> None:
    box("run", "-d", "--name", "h1", "--network", "none", "--health-cmd", "true",
        "--health-interval", "0.2s", "box:1", "sleep", "60")
    assert _seen(http, "h1")[1].endswith("(health: starting)")
    until("healthy in inspect", lambda: http.get("/containers/h1/json").json()[
        "State"]["Health"]["Status"] == "healthy")
    assert _seen(http, "h1")[1].endswith("(healthy)")
    box("rm", "-f", "h1")


def test_a_supervisor_that_died_unseen_is_noticed_by_the_list(
        http: httpx.Client, box: Dockyard) -> None:
    """Killed with its container, a supervisor writes nothing (the zygote's watchdog,
    which would tell first, is off): its log closing is an inotify event, and the list
    also looks at the supervisor itself at each request (red with neither)."""
    box.env["DOCKYARD_ZYGOTE_WATCHDOG"] = "0"  # (this CLI starts the root's zygote)
    box("run", "-d", "--name", "s1", "--network", "none", "box:1", "sleep", "60")
    assert _seen(http, "s1")[0] == "running"  # kept from here on
    log = json.loads(box("container", "inspect", "s1").stdout)[0]["LogPath"]
    status = json.loads((Path(log).parent / "status.json").read_text())
    os.kill(status["supervisor_pid"], signal.SIGKILL)
    os.kill(status["pid"], signal.SIGKILL)
    until("the list to see the exit", lambda: _seen(http, "s1")[0] == "exited", timeout=20)
    box("rm", "-f", "s1")
