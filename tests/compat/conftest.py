"""Fixtures for the compatibility tests: a local docker-registry and a dyard CLI."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.testing.registry import Registry, RegistryMissing, local_registry

__all__ = ["Registry"]  # the tests' type for the fixtures below


def _start_registry(tmp_path: Path, htpasswd: Path | None) -> Iterator[Registry]:
    try:
        with local_registry(tmp_path, htpasswd) as started:
            yield started
    except RegistryMissing as exc:
        pytest.skip(str(exc))


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


