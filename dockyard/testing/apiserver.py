"""``dockyard serve`` for a test: its own root, a unix socket in a short temporary
directory (socket paths have 108 bytes), stopped by pid at the end, whatever happens."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from dockyard.testing.cli import Dockyard, run_captured
from dockyard.testing.poll import until


class ApiServer(NamedTuple):
    socket: Path
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]  # the environment a docker client needs: DOCKER_HOST and co

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, check: bool = True, input: bytes | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The real docker CLI against this server."""
        return run_captured(["docker", *args], env=self.env, input=input, check=check,
                            timeout=timeout)


def _listening(path: Path) -> bool:
    """The socket takes connections (its file appears at bind(), before listen())."""
    import socket

    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def api_server(cli: Dockyard) -> Iterator[ApiServer]:
    work = Path(tempfile.mkdtemp(prefix="dyapi-"))
    sock = work / "docker.sock"
    log = work / "serve.log"
    env = {**cli.env, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(work / "config"),
           "DOCKER_CLI_HINTS": "false"}
    env.pop("DOCKER_CONTEXT", None)
    with open(log, "wb") as out:
        process = subprocess.Popen([*cli.argv, "--root", str(cli.root), "serve", "--host",
                                    f"unix://{sock}"], stdout=out, stderr=out, env=cli.env)
    try:
        until("the API socket", lambda: _listening(sock) or process.poll() is not None)
        assert process.poll() is None, log.read_text()
        yield ApiServer(sock, process, log, env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)
