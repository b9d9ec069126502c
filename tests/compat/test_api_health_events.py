"""``health_status`` events: recorded by the engine for containers made by either front
end, streamed by ``GET /events`` to the real ``docker events`` as a private dockerd
streams its own, shown by ``dockyard events``."""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.testing.apiserver import ApiServer
from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import Dockyard
from dockyard.testing.dockerd import DOCKER
from tests.compat.daemons import busybox_dockerd

pytestmark = pytest.mark.root

FORMAT = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.team}}"
# healthy at the first check; unhealthy at the first failure once /tmp/bad exists
HEALTH = ("--health-cmd", "test ! -f /tmp/bad", "--health-interval", "0.3s",
          "--health-retries", "1")


@pytest.fixture(autouse=True)
def _docker_cli() -> None:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed (Debian package docker.io)")


def _line(follower: subprocess.Popen[str], timeout: float = 30) -> str:
    assert follower.stdout is not None
    ready, _, _ = select.select([follower.stdout], [], [], timeout)
    assert ready, "no event came"
    return follower.stdout.readline().rstrip("\n")


def _health_story(env: dict[str, str],
                  make: Callable[[str, str], None]) -> list[str]:
    """``docker events --filter event=health_status`` while a container ``make``
    (name, label) becomes healthy, then unhealthy."""
    docker = DOCKER or "docker"
    follower = subprocess.Popen([docker, "events", "--filter", "event=health_status",
                                 "--format", FORMAT], env=env, stdout=subprocess.PIPE,
                                text=True)
    try:
        time.sleep(0.5)  # listening (events before it are not streamed)
        make("hc1", "x")
        seen = [_line(follower)]
        subprocess.run([docker, "exec", "hc1", "touch", "/tmp/bad"], env=env, check=True,
                       capture_output=True, timeout=60)
        seen.append(_line(follower))
        return seen
    finally:
        follower.kill()
        follower.communicate()
        subprocess.run([docker, "rm", "-f", "hc1"], env=env, capture_output=True, timeout=60,
                       check=False)


WANTED = ["container health_status: healthy hc1 x", "container health_status: unhealthy hc1 x"]


def test_health_status_events_of_api_made_containers(api: ApiServer) -> None:
    def make(name: str, team: str) -> None:
        api.docker("run", "-d", "--name", name, "-l", f"team={team}", *HEALTH, "box:1",
                   "sleep", "60")

    assert _health_story(api.env, make) == WANTED


def test_health_status_events_of_cli_made_containers(api: ApiServer, box: Dockyard) -> None:
    since = f"{time.time() - 1:.3f}"

    def make(name: str, team: str) -> None:
        box("run", "-d", "--name", name, "-l", f"team={team}", "--network", "none", *HEALTH,
            "box:1", "sleep", "60")

    assert _health_story(api.env, make) == WANTED
    own = box("events", "--since", since, "--until", f"{time.time():.3f}", "--filter",
              "event=health_status", "--format", FORMAT).stdout.splitlines()
    assert own == WANTED


def test_dockerd_streams_the_same_health_status_events(tmp_path: Path) -> None:
    with busybox_dockerd() as daemon:
        daemon.docker("import", str(make_rootfs_tar(tmp_path)), "box:1")

        def make(name: str, team: str) -> None:
            daemon.docker("run", "-d", "--name", name, "-l", f"team={team}", *HEALTH, "box:1",
                          "sleep", "60")

        assert _health_story(daemon.env, make) == WANTED


def test_docker_run_health_flags_without_a_command_are_merged_with_the_images(
        api: ApiServer, box: Dockyard, tmp_path: Path) -> None:
    """``docker run --health-interval`` sends a Healthcheck without Test: the engine
    takes the image's test and retries, as dockerd's merge at create."""
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(
        "FROM box:1\nHEALTHCHECK --interval=60s --retries=2 CMD true\n")
    box("build", "-q", "-t", "checked:1", str(tmp_path / "ctx"))
    try:
        api.docker("run", "-d", "--name", "paced", "--health-interval", "200ms", "checked:1",
                   "sleep", "60")
        shown = api.docker("inspect", "--format", "{{json .Config.Healthcheck}}",
                           "paced").stdout
        assert json.loads(shown) == {"Test": ["CMD-SHELL", "true"], "Interval": 2 * 10**8,
                                     "Retries": 2}
        deadline = time.monotonic() + 5  # the image's 60 s would not be here yet
        while api.docker("inspect", "--format", "{{.State.Health.Status}}",
                         "paced").stdout.strip() != "healthy":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        api.docker("rm", "-f", "paced", check=False)
