"""The zygote's spare (``supervise.spare``): the next container's supervisor is forked
ahead, once the zygote is idle, and ends with the zygote when no start comes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from dockyard.supervise.spare import SPARE_NAME
from dockyard.testing.cli import Dockyard
from dockyard.testing.poll import until


def _supervisor(dy: Dockyard, name: str) -> int:
    container_id = dy("inspect", "--format", "{{.Id}}", name).stdout.strip()
    status = json.loads((dy.root / "containers" / container_id / "status.json").read_text())
    return int(status["monitor_pid"])


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _spares_of(zygote: int) -> list[int]:
    """The zygote's children waiting as spares (by their name)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == SPARE_NAME and \
                        _parent(int(entry)) == zygote:
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def test_the_next_container_is_supervised_by_the_spare_forked_ahead(box: Dockyard) -> None:
    box("run", "-d", "--name", "first", "--network", "none", "box:1", "sleep", "60")
    zygote = _parent(_supervisor(box, "first"))
    spare = until("a spare forked once the zygote is idle", lambda: _spares_of(zygote))[0]
    box("run", "-d", "--name", "second", "--network", "none", "box:1", "sleep", "60")
    # red when every supervisor is forked at its request: a pid not seen before
    assert _supervisor(box, "second") == spare
    assert Path(f"/proc/{spare}/comm").read_text().strip() != SPARE_NAME
    assert box("exec", "second", "true").returncode == 0
    box("rm", "-f", "first", "second")


def test_an_unused_spare_ends_with_its_zygote(box: Dockyard) -> None:
    box("run", "-d", "--name", "only", "--network", "none", "box:1", "sleep", "60")
    zygote = _parent(_supervisor(box, "only"))
    spare = until("a spare", lambda: _spares_of(zygote))[0]
    os.kill(zygote, signal.SIGKILL)  # (this test's own zygote, by its id)
    until("the spare to end", lambda: not Path(f"/proc/{spare}").exists() or
          Path(f"/proc/{spare}/stat").read_text().rpartition(")")[2].split()[0] == "Z")
    box("rm", "-f", "only")
