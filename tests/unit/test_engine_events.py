"""The root's event log: one line per event, read back by time and filter, followed
across a rotation; Docker's time forms."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from dockyard.engine import events
from dockyard.engine.events import EventLog, matches, parse_time
from dockyard.errors import InvalidArgument


def test_recorded_events_read_back_in_docker_shape(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.container("create", "c" * 64, "web", "box:1", {"team": "a"})
    log.container("die", "c" * 64, "web", "box:1", {}, exitCode="3")
    log.record("volume", "create", "v1", {"driver": "local"})
    found = list(log.read())
    assert [(e["Type"], e["Action"]) for e in found] == \
        [("container", "create"), ("container", "die"), ("volume", "create")]
    first = found[0]
    assert first["Actor"] == {"ID": "c" * 64,
                              "Attributes": {"team": "a", "image": "box:1", "name": "web"}}
    assert (first["status"], first["id"], first["from"]) == ("create", "c" * 64, "box:1")
    assert first["time"] == first["timeNano"] // 1_000_000_000
    assert stat_mode(tmp_path / events.FILE) == 0o600
    assert [e["Action"] for e in log.read() if matches(e, {"label": ["team=a"]})] == ["create"]
    assert [e["Actor"]["ID"] for e in log.read() if matches(e, {"type": ["volume"]})] == ["v1"]
    assert [e["Action"] for e in log.read() if matches(e, {"container": ["web"],
                                                          "event": ["die"]})] == ["die"]
    later = time.time() + 60
    assert list(log.read(since=later)) == []
    assert len(list(log.read(until=later))) == 3


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def test_a_torn_or_foreign_line_is_skipped(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.record("image", "tag", "sha256:x", {"name": "a:1"})
    with open(tmp_path / events.FILE, "ab") as handle:
        handle.write(b'{"Type": "image", "Act\n[1]\n')
    log.record("image", "untag", "sha256:x", {"name": "a:1"})
    assert [e["Action"] for e in log.read()] == ["tag", "untag"]


def test_follow_sees_new_events_across_a_rotation(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "LIMIT", 600)
    log = EventLog(tmp_path)
    log.record("network", "connect", "old")  # before the follower: not streamed
    stop = threading.Event()
    seen: list[str] = []

    def follow() -> None:
        for event in log.read(follow=True, stop=stop.is_set):
            seen.append(event["Actor"]["ID"])
            if len(seen) == 6:
                return

    reader = threading.Thread(target=follow)
    reader.start()
    time.sleep(0.3)
    for n in range(6):  # ~200 bytes each: rotated on the way
        log.record("network", "connect", f"n{n}", {"pad": "x" * 100})
        time.sleep(0.15)
    reader.join(10)
    stop.set()
    assert not reader.is_alive()
    assert seen == [f"n{n}" for n in range(6)]
    assert (tmp_path / (events.FILE + ".1")).exists()
    assert [e["Actor"]["ID"] for e in log.read()][-1] == "n5"


def test_docker_time_forms() -> None:
    assert parse_time("1700000000.5") == 1700000000.5
    assert parse_time("2024-01-02T03:04:05.123456789Z") == pytest.approx(1704164645.123456)
    assert abs(parse_time("10m") - (time.time() - 600)) < 5
    with pytest.raises(InvalidArgument):
        parse_time("yesterday")


def test_a_recording_failure_never_raises(tmp_path: Path) -> None:
    EventLog(tmp_path / "missing" / "dir").record("container", "start", "x")
