"""Debian's docker-registry on 127.0.0.1 for the tests and benches: started with a
config of its own in a directory the caller owns, waited for, stopped by pid."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from dockyard.testing.cli import free_port


class Registry(NamedTuple):
    address: str  # 127.0.0.1:PORT
    storage: Path


class RegistryMissing(RuntimeError):
    """docker-registry is not installed."""


@contextlib.contextmanager
def local_registry(workdir: Path, htpasswd: Path | None = None) -> Iterator[Registry]:
    """A registry storing in ``workdir/registry-data`` (deletes enabled; Basic auth from
    ``htpasswd`` if given), its log in ``workdir/registry.log``."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RegistryMissing("docker-registry is not installed (Debian package "
                              "docker-registry)")
    import httpx

    port = free_port()
    storage = workdir / "registry-data"
    auth = (f"auth:\n  htpasswd:\n    realm: dockyard-test\n    path: {htpasswd}\n"
            if htpasswd else "")
    config = workdir / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n{auth}")
    log_path = workdir / "registry.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
                    break
                except httpx.HTTPError:
                    if process.poll() is not None:
                        raise RuntimeError("docker-registry exited: "
                                           + log_path.read_text()) from None
                    if time.monotonic() > deadline:
                        raise RuntimeError("docker-registry did not start") from None
                    time.sleep(0.1)
            yield Registry(f"127.0.0.1:{port}", storage)
        finally:
            process.terminate()
            process.wait(timeout=20)
