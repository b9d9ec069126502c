"""Fixtures for the compatibility tests: a local docker-registry and a dyard CLI."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from dockyard.testing.cli import free_port


class Registry(NamedTuple):
    address: str  # 127.0.0.1:PORT
    storage: Path


def _start_registry(tmp_path: Path, htpasswd: Path | None) -> Iterator[Registry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (Debian package docker-registry)")
    port = free_port()
    storage = tmp_path / "registry-data"
    auth = (f"auth:\n  htpasswd:\n    realm: dockyard-test\n    path: {htpasswd}\n"
            if htpasswd else "")
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n{auth}")
    log = open(tmp_path / "registry.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except httpx.HTTPError:
                assert process.poll() is None, (tmp_path / "registry.log").read_text()
                assert time.monotonic() < deadline, "docker-registry did not start"
                time.sleep(0.1)
        yield Registry(f"127.0.0.1:{port}", storage)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    yield from _start_registry(tmp_path, None)


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[Registry]:
    if shutil.which("htpasswd") is None:
        pytest.skip("htpasswd is not installed (Debian package apache2-utils)")
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), "alice", "s3cret"], check=True,
                   capture_output=True)
    yield from _start_registry(tmp_path, htpasswd)


